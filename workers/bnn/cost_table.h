// The per-layer cost table of a plan as JSON (artifact cost.json of bnn.cost
// and bnn.train). Stateless.
#ifndef LOUPE_WORKERS_BNN_COST_TABLE_H_
#define LOUPE_WORKERS_BNN_COST_TABLE_H_

#include <string>

#include "workers/bnn/network_plan.h"

namespace loupe::bnn {

std::string CostJson(const NetworkPlan& plan, const CostReport& cost);

}  // namespace loupe::bnn

#endif  // LOUPE_WORKERS_BNN_COST_TABLE_H_
