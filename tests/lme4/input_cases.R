# lme4's answers on inputs whose reading is easy to get wrong, for
# tests/formula/test_grouping.py, tests/test_errors.py and tests/inference/test_predict_inputs.py.
#
# Run from the repository root:
#     Rscript tests/lme4/input_cases.R
# writes tests/lme4/fixtures/input_cases.json with
#   float_groups:  a numeric grouping column whose doubles print alike at 15
#                  significant digits (0.3 and 0.1 + 0.2): R's factor() merges
#                  them (it matches as.character() of the values), so lme4
#                  sees 9 groups of 18 doubles; the levels, estimates, ranef, the same
#                  column as a fixed factor(g), and predict() on each double;
#   logical_na:    a logical predictor with NA (na.action = na.omit): lme4
#                  names its column bTRUE; estimates and nobs;
#   weights:       a weighted fit (weights a column of the data), which a
#                  weights Series in another row order must reproduce.
# The data are read from mixedfit/datasets/data/<name>.csv.gz + <name>.json,
# the very files Python loads, so both sides fit identical numbers.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "input_cases.json")
# 17 significant digits: 0.1 + 0.2 must not be written as 0.3
json_number_style(digits = "17")

sleep <- read_dataset("sleepstudy")

estimates <- function(fit) {
  dc <- getME(fit, "devcomp")
  list(
    objective = jnum(if (isREML(fit)) dc$cmp[["REML"]] else dc$cmp[["dev"]]),
    theta = jarr(getME(fit, "theta")),
    beta = jarr(fixef(fit)),
    beta_names = jstr(names(fixef(fit))),
    sigma = jnum(sigma(fit)),
    nobs = nobs(fit),
    ngroups = as.list(getME(fit, "l_i"))
  )
}

# -- a numeric grouping column with doubles that print alike ------------------

float_groups <- local({
  # 18 distinct doubles, 9 printed values (0.1, ..., 0.9): k / 10 and the
  # double just above it (0.1 + 0.2 and 0.3 among them), one per subject
  tenths <- (1:9) / 10
  values <- as.vector(rbind(tenths, tenths * (1 + .Machine$double.eps)))
  values[5:6] <- c(0.1 + 0.2, 0.3)
  stopifnot(length(unique(values)) == 18, length(unique(as.character(values))) == 9)
  d <- sleep
  d$g <- values[as.integer(d$Subject)]
  fit <- lmer(Reaction ~ Days + (1 | g), d)
  fixed <- lmer(Reaction ~ factor(g) + (1 | Subject), d)
  new <- data.frame(Days = 1, g = values)
  re <- ranef(fit)$g
  c(list(values = jarr(values), g = jarr(d$g), formula = "Reaction ~ Days + (1 | g)",
         levels = jstr(levels(factor(d$g))),
         ranef = jtable(re),
         predict_days = jnum(1), predict = jarr(predict(fit, newdata = new)),
         fixed_formula = "Reaction ~ factor(g) + (1 | Subject)",
         fixed = estimates(fixed)),
    estimates(fit))
})

# -- a logical predictor with missing values ----------------------------------

logical_na <- local({
  d <- sleep
  na_rows <- c(1L, 6L, 29L, 100L)  # 0-based
  d$b <- d$Days %% 2 == 0
  d$b[na_rows + 1L] <- NA
  fit <- lmer(Reaction ~ Days + b + (1 | Subject), d, na.action = na.omit)
  c(list(formula = "Reaction ~ Days + b + (1 | Subject)", b = I(d$b),
         na_rows = I(na_rows)),
    estimates(fit))
})

# -- weights given as a column of the data ------------------------------------

weights <- local({
  d <- sleep
  d$w <- 1 + (seq_len(nrow(d)) %% 7) / 2
  fit <- lmer(Reaction ~ Days + (1 | Subject), d, weights = w)
  c(list(formula = "Reaction ~ Days + (1 | Subject)", w = jarr(d$w)), estimates(fit))
})

out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  float_groups = float_groups,
  logical_na = logical_na,
  weights = weights
)
write_fixture(out, out_file)
message("wrote ", out_file)
