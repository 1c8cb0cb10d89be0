"""mixedfit: linear mixed-effects models with lme4's formulas and lme4's numbers.

Examples
--------
>>> import mixedfit as mf
>>> fit = mf.mixed("Reaction ~ Days + (Days|Subject)", mf.load_dataset("sleepstudy"))
>>> fit.theta.round(4).tolist()
[0.9667, 0.0152, 0.2309]
"""

from . import errors
from .datasets import list_datasets, load_dataset
from .family import family
from .glmm_results import GlmmResults
from .inference.lrt import anova
from .api import mixed
from .model import MixedModel
from .plots import plot_data
from .results import MixedResults

__all__ = ["mixed", "anova", "MixedModel", "MixedResults", "GlmmResults", "family", "load_dataset",
           "list_datasets", "errors", "plot_data"]
__version__ = "0.1.0"
