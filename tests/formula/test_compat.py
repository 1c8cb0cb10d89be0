"""mixedfit.formula._compat: expressions evaluated by their kept code, or by formulaic where a transform keeps state."""

import numpy as np

from mixedfit.formula import _compat


def test_an_expression_without_stateful_transforms_is_compiled_once():
    state: dict = {}
    before = _compat._compiled.cache_info()
    first = _compat.evaluate("(_c61 ** 2)", {"_c61": np.arange(4.0)}, state)
    again = _compat.evaluate("(_c61 ** 2)", {"_c61": np.arange(1.0, 3.0)}, state)
    after = _compat._compiled.cache_info()
    assert first.tolist() == [0.0, 1.0, 4.0, 9.0] and again.tolist() == [1.0, 4.0]
    assert after.hits - before.hits >= 1 and state == {}


def test_a_stateful_transform_gets_its_state_from_formulaic():
    def mean_centred(x, _state=None):
        _state.setdefault("mean", float(np.mean(x)))
        return x - _state["mean"]

    state: dict = {}
    namespace = {"_f_centre": _compat.stateful(mean_centred), "_c61": np.array([1.0, 2.0, 6.0])}
    assert _compat.evaluate("_f_centre(_c61)", namespace, state).tolist() == [-2.0, -1.0, 3.0]
    assert [entry["mean"] for entry in state.values()] == [3.0]
    # new data are centred by the mean kept from the first
    namespace["_c61"] = np.array([0.0, 10.0])
    assert _compat.evaluate("_f_centre(_c61)", namespace, state).tolist() == [-3.0, 7.0]
