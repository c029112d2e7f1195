"""Time the core package's two hot paths (a measurement, not a test).

    python benchmarks/core_timings.py

1. Training the LSA from small random init until V31 is within 3% (relative Frobenius) of
   −Γ⁻¹ for a non-diagonal Λ (d = 10, n = 20), the setting of the unit test.
2. Evaluating 10,000 prompts × k = 1…50 at d = 20 (sampling, CoT rollout, bootstrap CI).
"""
import time

import torch

import ttsbook as tb


def time_training(bar: float = 0.03) -> tuple[int, float]:
    d, n = 10, 20
    cov = tb.rotate(tb.power_law(d, 1.0), seed=1)
    target = tb.pseudo_newton_v(cov, n)
    model = tb.LSA(tb.LSAConfig(d))
    config = tb.TrainConfig(steps=500, batch_size=1024, lr=0.01, log_every=10)

    def distance(m):
        return {"dist": (torch.linalg.norm(m.V31.detach().double() - target) / torch.linalg.norm(target)).item()}

    start = time.perf_counter()
    history = tb.train(model, tb.RegressionTask(cov), n, config, monitor=distance, device="cpu")
    total = time.perf_counter() - start
    first = int(history.loc[history["dist"] < bar, "step"].iloc[0])
    return first, total * (first + 1) / config.steps


def time_evaluation(repeats: int = 3) -> float:
    eye = tb.isotropic(20)
    model = tb.LSA(tb.LSAConfig(20)).set_closed_form(eye, 20)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tb.evaluate({"lsa": model}, tb.RegressionTask(eye), 40, 50, n_prompts=10_000, device="cpu")
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    step, seconds = time_training()
    print(f"train to 3% of -Γ⁻¹ (d=10, n=20, batch 1024, Adam 1e-2 cosine over 500): step {step}, ~{seconds:.1f} s")
    print(f"evaluate 10,000 prompts x k=1..50, d=20, m=40 (median of 3): {time_evaluation():.2f} s")
