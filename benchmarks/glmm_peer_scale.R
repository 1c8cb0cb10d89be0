# glmer's own Laplace deviance function at mixedlm's θ on cbpp, β refitted: the check
# benchmarks/README.md cites for judging the GLMM peers by glmer's function, not their own number.
#   Rscript benchmarks/glmm_peer_scale.R [theta]   (default: mixedlm 1.3.0's θ on cbpp)
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
theta <- if (length(args)) as.numeric(args[1]) else 0.6422611815143894
form <- cbind(incidence, size - incidence) ~ period + (1 | herd)
fit <- glmer(form, cbpp, binomial)
dev <- glmer(form, cbpp, binomial, devFunOnly = TRUE)
cat(sprintf("glmer's -2 logLik at its optimum:           %.9f (theta %.9f)\n", -2 * logLik(fit), getME(fit, "theta")))
cat(sprintf("its deviance function there:                %.9f\n", dev(c(getME(fit, "theta"), fixef(fit)))))
refit <- optim(fixef(fit), function(b) dev(c(theta, b)), method = "BFGS", control = list(reltol = 1e-14))
cat(sprintf("its deviance function at theta %.9f, beta refitted: %.9f\n", theta, refit$value))
