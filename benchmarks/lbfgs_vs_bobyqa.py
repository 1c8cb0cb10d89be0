"""L-BFGS-B on the exact gradient against one BOBYQA run, per lme4 fixture model (see RESULTS_gradient.md).

Run from the repository root: PYTHONPATH=$PWD python benchmarks/lbfgs_vs_bobyqa.py
"""
import sys, time, numpy as np, warnings
sys.path.insert(0, __import__('os').path.dirname(__file__))
from gradient_sweep import cases, model_of
from scipy.optimize import minimize
from mixedfit.optimize import bobyqa
warnings.simplefilter("ignore")
print(f"{'case':30s} {'nθ':>3s} {'bob ev':>6s} {'bob ms':>8s} {'lb ev':>6s} {'lb ms':>8s} {'lb-lme4':>10s} {'bob-lme4':>10s}")
for c in cases():
    m = model_of(c)
    with m.blas_threads():
        t=time.perf_counter(); ob = bobyqa(m.objective, m.start, m.lower); tb=time.perf_counter()-t
        n=[0]
        def fg(x):
            n[0]+=1
            try: return m.objective_and_gradient(x)
            except ValueError: return np.inf, np.zeros_like(x)
        bounds=[(lo if np.isfinite(lo) else None, None) for lo in m.lower]
        t=time.perf_counter(); r = minimize(fg, m.start, jac=True, method="L-BFGS-B", bounds=bounds, options={"ftol":1e-14,"gtol":1e-8,"maxiter":10000}); tl=time.perf_counter()-t
    print(f"{c['id']:30s} {m.ntheta:3d} {ob.feval:6d} {tb*1e3:8.1f} {n[0]:6d} {tl*1e3:8.1f} {r.fun-c['objective']:10.2e} {ob.fmin-c['objective']:10.2e}", flush=True)
