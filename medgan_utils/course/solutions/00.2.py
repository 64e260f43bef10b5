sizes = cfg.pick(fast=[32, 128, 512], full=[32, 128, 512, 1024])
rates = {}
for size in sizes:
    rates[size] = time_matmul(cfg.device, n=size, repeats=cfg.pick(fast=3, full=10))["gflops"]
    print(f"n = {size:>4}: {rates[size]:8.2f} GFLOP/s")
print(f"largest / smallest size: {rates[sizes[-1]] / rates[sizes[0]]:.0f}x more operations per second")
quiz_00_2 = "b"  # fixed costs per call dominate a small product
