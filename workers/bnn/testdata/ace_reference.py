#!/usr/bin/python3
"""Independent ACE reference for network_plan_test.cc.

Walks PokeBNN's shapes the way aqt's size_stats counts them (conv ACE =
H_out·W_out·k²·C_in/groups·C_out·w_bits·a_bits; SE convs on the pooled 1×1
map; dense in·out·64) and prints the values the test pins. Run:
  /usr/bin/python3 workers/bnn/testdata/ace_reference.py
"""


def pokebnn(width=1.0, size=224, stages=((3, 64), (4, 128), (6, 256), (3, 512)),
            stem_k=4, group=32, classes=1000, in_ch=3):
    ace = {"stem": 0, "binary_conv": 0, "se_conv": 0, "dense": 0}
    h = (size - stem_k) // stem_k + 1
    ace["stem"] += h * h * stem_k * stem_k * in_ch * group * 64
    ace["stem"] += h * h * 9 * 1 * 2 * group * 64
    cin = 2 * group
    for s, (blocks, f) in enumerate(stages):
        F = int(f * width + 1e-9)
        for b in range(blocks):
            stride = 2 if (b == 0 and s > 0) else 1
            for k, co, st in ((1, F, 1), (3, F, stride), (1, 4 * F, 1)):
                h = -(-h // st)
                ace["binary_conv"] += h * h * k * k * cin * co
                hid = max(1, cin // 8)
                ace["se_conv"] += (cin * hid + hid * co) * 16
                cin = co
    ace["dense"] = cin * classes * 64
    ace["conv"] = ace["stem"] + ace["binary_conv"] + ace["se_conv"]
    return ace


if __name__ == "__main__":
    for w in (0.5, 0.75, 1.0, 2.0):
        a = pokebnn(w)
        print(f"pokebnn width={w}: conv={a['conv']} dense={a['dense']} se={a['se_conv']} "
              f"binary={a['binary_conv']} stem={a['stem']}")
    a = pokebnn(1.0, 28, ((2, 16), (2, 32)), 2, 16, 10, 1)
    print(f"pokebnn_small 28: conv={a['conv']} dense={a['dense']} se={a['se_conv']} "
          f"binary={a['binary_conv']} stem={a['stem']}")
