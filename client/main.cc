// loupe: the command-line client of a Loupe job server. See docs/cli.md.
#include "client/cli.h"

int main(int argc, char** argv) {
  return loupe::cli::RunCli(argc, argv, loupe::cli::ProcessEnvironment());
}
