# The one-way ANOVA (method of moments) estimates that mixedfit's
# method="moments" must reproduce (tests/test_moments.py), computed as the
# lecture does (Hoff, STA 610, "Maximum likelihood estimation": anova(lm(y ~ g)),
# tau2 = (MSG - MSE) / n, sigma2 = MSE), and for unbalanced groups with
# n0 = (N - sum(n_j^2) / N) / (m - 1) in place of n (Searle, Casella &
# McCulloch 1992, Variance Components, section 3.5d).  Also lme4's REML fit of
# each, which equals the ANOVA estimates on balanced data.  Run from the
# repository root: Rscript tests/lme4/moments_cases.R (under a second).
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))
suppressPackageStartupMessages(library(lme4))

anova_case <- function(d, y, g, rows = seq_len(nrow(d))) {
  d <- d[rows, ]
  yy <- d[[y]]; gg <- factor(d[[g]], ordered = FALSE)
  aovfit <- anova(lm(yy ~ gg))
  MSG <- aovfit[1, 3]; MSE <- aovfit[2, 3]
  nj <- table(gg); N <- sum(nj); m <- length(nj)
  n0 <- (N - sum(nj^2) / N) / (m - 1)
  fit <- lmer(as.formula(paste(y, "~ 1 + (1 |", g, ")")), data = d)
  vc <- as.data.frame(VarCorr(fit))
  list(rows = jarr(rows - 1), MSG = jnum(MSG), MSE = jnum(MSE), n0 = jnum(n0),
       tau2 = jnum((MSG - MSE) / n0), sigma2 = jnum(MSE), mean = jnum(mean(yy)),
       reml_tau2 = jnum(vc$vcov[1]), reml_sigma2 = jnum(vc$vcov[2]))
}

dye <- read_dataset("Dyestuff")
hsb <- read_dataset("Hsb82")
write_fixture(list(
  dyestuff = anova_case(dye, "Yield", "Batch"),
  # unbalanced: the first 3, 5, 2, 5, 4 and 5 preparations of the six batches
  dyestuff_unbalanced = anova_case(dye, "Yield", "Batch", c(1:3, 6:10, 11:12, 16:20, 21:24, 26:30)),
  hsb82 = anova_case(hsb, "mAch", "school")
), file.path(fixtures_dir, "moments_cases.json"))
