ring_traces, outcome = {}, {}
for s in (SEED, SEED + 1):
    _, ring_traces[s] = train_ring_gan(lr_g=1e-4, steps=EX_RING_STEPS, seed=s, eval_every=EX_RING_STEPS // 6)
    trace = ring_traces[s]
    dominant = [int(t[3][1].argmax()) for t in trace]
    n_hops = hops(trace)
    outcome[s] = "spreads" if trace[-1][1] >= 3 else "hops" if n_hops else "stays"
    print(f"seed {s}: modes covered {[t[1] for t in trace]} at steps {[t[0] for t in trace]}; dominant mode "
          f"{dominant}; {n_hops} hop(s) -> {outcome[s]}")
print(f"{EX_RING_STEPS} steps per seed; section 6 stopped at {RING_STEPS}."
      + (" Set EX_RING_STEPS = 9000 (three times section 6) for the full question." if EX_RING_STEPS < 3 * RING_STEPS
         else ""))
