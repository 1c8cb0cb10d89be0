# lme4's fits of the models whose fitting speed issue 21 ("Performance") is about,
# for tests/test_perf_cases.py: mixedfit's fast paths must reach lme4's optimum.
#
# Run from the repository root (about 4 minutes: lme4 takes most of it on InstEval):
#     Rscript tests/lme4/perf_cases.R
# writes tests/lme4/fixtures/perf_cases.json with, per case, the data set,
# formula, REML or ML, and lme4's objective, theta, number of evaluations
# (optinfo$feval, BOBYQA's) and its convergence messages.
#
# Cases:
#   insteval_mmjl  MixedModels.jl's published InstEval benchmark model,
#                  y ~ 1 + service + (1|d) + (1|s) + (1|dept) + (0 + service|dept)
#                  by ML: (1|dept) and (0 + service|dept) overlap, so the
#                  optimum lies on a ridge (lme4 warns of a degenerate Hessian).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "perf_cases.json")
json_number_style(digits = "17")

cases <- list(
  list(id = "insteval_mmjl", dataset = "InstEval",
       formula = "y ~ 1 + service + (1|d) + (1|s) + (1|dept) + (0 + service|dept)", reml = FALSE)
)

fits <- lapply(cases, function(cs) {
  data <- read_dataset(cs$dataset)
  fit <- lmer(as.formula(cs$formula), data, REML = cs$reml)
  list(
    id = cs$id, dataset = cs$dataset, formula = cs$formula, reml = cs$reml,
    objective = jnum(if (cs$reml) REMLcrit(fit) else deviance(fit)),
    theta = jarr(getME(fit, "theta")),
    feval = fit@optinfo$feval,
    conv_messages = jstr(unlist(fit@optinfo$conv$lme4$messages))
  )
})

out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  fits = fits
)
write_fixture(out, out_file)
message("wrote ", out_file)
