"""Fast mode sized by measured speed (issue 25): a slower machine gets fewer steps, the same speed the same count."""
import pytest
import torch

from medgan_utils.core.errors import SettingError
from medgan_utils.course.budget import fast_budget, measure_speed, trainer_fast_budget, units_for_budget


class FakeClock:
    """A clock that advances by ``seconds_per_step`` for every step the probe runs."""

    def __init__(self, seconds_per_step):
        self.now, self.per_step = 0.0, seconds_per_step

    def __call__(self):
        return self.now

    def probe(self, n):
        self.now += n * self.per_step


@pytest.mark.parametrize("per_step, expected", [(0.05, 8), (0.5, 2), (0.2, 3), (0.1, 6)])
def test_epochs_follow_the_measured_speed(per_step, expected):
    clock = FakeClock(per_step)
    out = fast_budget(clock.probe, budget_s=25.0, steps_per_unit=36, images_per_step=128, minimum=2, maximum=8,
                      clock=clock)
    assert out["units"] == expected and out["steps"] == 36 * expected
    assert out["img_per_s"] == pytest.approx(128 / per_step)
    assert out["at_minimum"] == (per_step * 36 * 2 > 25.0)


def test_a_slower_clock_never_gives_more_steps():
    counts = [fast_budget(c.probe, budget_s=30.0, steps_per_unit=10, images_per_step=64, minimum=1, maximum=50,
                          clock=c)["steps"] for c in (FakeClock(s) for s in (0.01, 0.05, 0.1, 0.3, 1.0))]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


def test_measure_speed_excludes_the_warmup():
    calls = []
    clock = FakeClock(0.1)

    def probe(n):
        calls.append(n)
        clock.probe(n if len(calls) > 1 else 100)   # the first (warm-up) call is slow: not counted
    assert measure_speed(probe, steps=4, clock=clock) == pytest.approx(0.1) and calls == [1, 4]


def test_bad_budgets_are_refused():
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(SettingError, match="budget"):
            units_for_budget(0.1, bad, 1, 8)
    with pytest.raises(SettingError, match="minimum"):
        units_for_budget(0.1, 10, 5, 2)


def test_trainer_fast_budget_probes_a_throwaway_trainer(one_thread):
    from medgan_utils.gan import DCGANTrainer
    from medgan_utils.nets import make_dcgan

    data = torch.rand(64, 1, 28, 28) * 2 - 1
    built, stepped = [], []

    def make():
        g, d = make_dcgan(28, 1, 16, base=8, seed=0)
        built.append(DCGANTrainer(g, d, data, batch_size=16, progress=False, seed=0))
        return built[-1]

    slow, fast = FakeClock(0.0), FakeClock(0.0)

    def timed(clock, per_step):      # the real steps run; the clock says how long they "took"
        real = DCGANTrainer.run_steps

        def run(self, n):
            real(self, n)
            stepped.append((id(self), n))
            clock.now += n * per_step
        return run

    orig = DCGANTrainer.run_steps
    try:
        DCGANTrainer.run_steps = timed(slow, 2.0)
        a = trainer_fast_budget(make, budget_s=20.0, minimum=1, maximum=8, clock=slow)
        DCGANTrainer.run_steps = timed(fast, 0.1)
        b = trainer_fast_budget(make, budget_s=20.0, minimum=1, maximum=8, clock=fast)
    finally:
        DCGANTrainer.run_steps = orig
    assert a["units"] < b["units"] and a["units"] == 2 and b["units"] == 8   # 4 steps per epoch
    assert len(built) == 2 and [n for t, n in stepped if t == id(built[0])] == [1, 3]  # 1 warm-up + 3 timed
