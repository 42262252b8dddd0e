#!/usr/bin/env python3
#   gen_telemetry_anomaly - builds the labelled set "vizmesh-traffic-anomalies-v1"
#   SPDX-License-Identifier: MPL-2.0
#
#   Four synthetic request-rate series of 14 days at 5-minute steps (4032 points
#   each, 288 per daily season), each with a daily cycle, a weekly dip,
#   noise and a slow trend, and injected anomalies labelled 1: spikes (1 point),
#   dips to near zero (outage, 3-12 points), bursts (2-6 points, +40-120 %),
#   and level shifts (the first 12 points, an hour, after the shift are
#   labelled: a shift that lasts longer is the new normal). The first 2 days carry no
#   anomaly (the detector's warm-up). Deterministic (seed 19).
#   Output: telemetry_anomaly_<0..3>.csv, columns timestamp,value,label (the
#   replay reads the first two and ignores the label).
import math
import os
import random

STEP = 300
DAY = 86400 // STEP
N = 14 * DAY
START = 1793491200  # 2026-11-02T00:00:00Z, a Monday

rng = random.Random(19)
rows = []
for series, base in enumerate([120.0, 40.0, 900.0, 8.0]):
    noise = 0.06 * base
    values, labels = [], []
    shift = 0.0
    events = {}
    t = 2 * DAY + rng.randrange(0, DAY)
    while t < N - 20:
        kind = rng.choice(["spike", "dip", "burst", "shift"])
        events[t] = kind
        t += rng.randrange(DAY // 3, DAY + DAY // 2)
    active, remaining, factor = None, 0, 1.0
    for i in range(N):
        if i in events:
            active = events[i]
            remaining = {"spike": 1, "dip": rng.randrange(3, 13), "burst": rng.randrange(2, 7),
                         "shift": 12}[active]
            factor = rng.uniform(1.4, 2.2)
            if active == "shift":
                shift += rng.choice([-1, 1]) * rng.uniform(0.35, 0.6) * base
        day_phase = (i % DAY) / DAY
        weekday = (i // DAY) % 7
        daily = 0.55 + 0.45 * math.sin(2 * math.pi * (day_phase - 0.3))
        weekly = 0.8 if weekday >= 5 else 1.0
        v = base * daily * weekly * (1 + 0.0004 * i / DAY) + shift + rng.gauss(0, noise)
        label = 0
        if remaining > 0:
            if active == "spike":
                v = v * rng.uniform(2.5, 4.0) + 6 * noise
            elif active == "dip":
                v = v * rng.uniform(0.0, 0.08)
            elif active == "burst":
                v = v * factor + 4 * noise
            label = 1
            remaining -= 1
        values.append(max(0.0, v))
        labels.append(label)
    for i in range(N):
        rows.append((series, START + i * STEP, values[i], labels[i]))

here = os.path.dirname(os.path.abspath(__file__))
total = 0
for series in range(4):
    out = os.path.join(here, f"telemetry_anomaly_{series}.csv")
    with open(out, "w") as f:
        f.write("timestamp,value,label\n")
        for s, t, v, l in rows:
            if s == series:
                f.write(f"{t},{v:.3f},{l}\n")
                total += l
print(len(rows), "rows,", total, "anomalous")
