for s in seeds[:1] if cfg.fast else [cfg.seed, cfg.seed + 1]:
    _, trace = train_ring_gan(lr_g=1e-4, seed=s, steps=cfg.pick(fast=600, full=3 * RING_STEPS), eval_every=500)
    dominant = [int(t[3][1].argmax()) for t in trace]
    print(f"seed {s}: modes covered along training {[t[1] for t in trace]}; dominant mode {dominant}; "
          f"final {trace[-1][1]}/8 modes, {trace[-1][2]:.0%} high quality, {hops(trace)} hop(s)")
print("Compare with the 3,000-step runs of section 6."
      + (" Fast mode trains only 600 steps here: run in full mode for a real answer." if cfg.fast else ""))
