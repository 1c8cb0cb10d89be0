# Persistent lme4 worker for benchmarks/run.py.
#
# Started once per benchmark session (and once per case for the memory probe)
# as `Rscript benchmarks/lme4_server.R`.  It reads one JSON command per line on
# stdin and answers each with exactly one line on stdout, "@@ " followed by a
# JSON object, so that R start-up, package loading and data loading are never
# inside a timed region and the harness can alternate libraries run by run.
# Everything else R prints (messages, warnings) goes to stderr.
#
# Commands (JSON objects, one per line):
#   {"cmd": "versions"}
#   {"cmd": "load", "id": ID, "manifest": PATH}
#       Builds the data frame for one case from the manifest written by
#       run.py.  For a bundled data set it reads mixedfit's CSV.gz with the
#       factor levels from the JSON beside it and then checks, column by
#       column, that the result is identical() to the raw float64 / int32
#       columns Python wrote from the data frame mixedfit fits.  For a
#       simulated data set it builds the frame from those raw columns.
#   {"cmd": "fit", "id": ID, "formula": F, "reml": true|false, "memory": bool,
#    "family": null|"binomial"|"poisson"}
#       Times lmer(F, data, REML = reml) end to end (model frame, formula
#       processing, optimisation, lme4's convergence checks); with a family,
#       glmer(F, data, family = family) (lme4's defaults: Laplace, nAGQ = 1).
#       GLMM replies carry objective = -2 logLik(fit) and laplace = the
#       objective glmer minimised, ldL2 + sum of deviance residuals + |u|^2
#       (-2 logLik without the saturated model's log-likelihood).
#   {"cmd": "drop", "id": ID}
#   {"cmd": "quit"}

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

.datasets <- new.env()
.out <- stdout()

reply <- function(x) {
  writeLines(paste0("@@ ", toJSON(x, auto_unbox = TRUE, digits = NA, null = "null",
                                  na = "null")), .out)
  flush(.out)
}

# Sys.time() has microsecond resolution; proc.time() only milliseconds
num17 <- function(x) sprintf("%.17g", unname(as.double(x)))

now <- function() as.numeric(Sys.time())

read_raw_column <- function(spec, nrow) {
  con <- file(spec$file, "rb")
  on.exit(close(con))
  if (spec$type == "numeric") {
    readBin(con, "double", n = nrow, size = 8, endian = "little")
  } else {
    v <- readBin(con, "integer", n = nrow, size = 4, endian = "little")
    if (spec$type == "factor") {
      v <- structure(v, levels = as.character(unlist(spec$levels)),
                     class = c(if (isTRUE(spec$ordered)) "ordered", "factor"))
    } else if (spec$type == "text") {  # a character vector, as read.csv gives it: lmer makes the factor
      v <- as.character(unlist(spec$values))[v]
    }
    v
  }
}

read_bundled <- function(csv, meta_path) {
  meta <- fromJSON(meta_path, simplifyVector = FALSE)
  cols <- meta$columns
  classes <- vapply(cols, function(s) switch(s$type, factor = "character",
                                             integer = "integer", numeric = "numeric"),
                    character(1))
  d <- utils::read.csv(gzfile(csv), colClasses = classes, na.strings = "",
                       stringsAsFactors = FALSE, check.names = FALSE)
  for (nm in names(cols)) {
    s <- cols[[nm]]
    if (s$type == "factor")
      d[[nm]] <- factor(d[[nm]], levels = as.character(unlist(s$levels)),
                        ordered = isTRUE(s$ordered))
  }
  if (nrow(d) != meta$nrow) stop("expected ", meta$nrow, " rows, read ", nrow(d))
  d
}

cmd_load <- function(msg) {
  t0 <- now()
  man <- fromJSON(msg$manifest, simplifyVector = FALSE)
  raw <- lapply(man$columns, read_raw_column, nrow = man$nrow)
  names(raw) <- vapply(man$columns, function(s) s$name, character(1))
  mismatch <- character(0)
  if (!is.null(man$bundled_csv)) {
    d <- read_bundled(man$bundled_csv, man$bundled_json)
    for (nm in names(raw)) {
      if (!identical(d[[nm]], raw[[nm]])) mismatch <- c(mismatch, nm)
    }
  } else {
    d <- as.data.frame(raw, optional = TRUE, stringsAsFactors = FALSE)
  }
  assign(msg$id, d, envir = .datasets)
  reply(list(ok = TRUE, nrow = nrow(d), ncol = ncol(d),
             identical = length(mismatch) == 0L, mismatch = I(mismatch),
             load_s = now() - t0))
}

# Peak resident set size of this process (Linux): VmHWM, which can be reset to
# the current RSS by writing "5" to /proc/self/clear_refs.
proc_status_kb <- function(field) {
  st <- tryCatch(readLines("/proc/self/status"), error = function(e) character(0))
  line <- grep(paste0("^", field, ":"), st, value = TRUE)
  if (!length(line)) return(NA_real_)
  as.numeric(sub("^[^0-9]*([0-9]+).*$", "\\1", line[1]))
}
reset_peak_rss <- function() {
  tryCatch({ cat("5", file = "/proc/self/clear_refs"); TRUE }, error = function(e) FALSE)
}

cmd_fit <- function(msg) {
  d <- get(msg$id, envir = .datasets)
  form <- stats::as.formula(msg$formula)
  reml <- isTRUE(msg$reml)
  memory <- isTRUE(msg$memory)
  warns <- character(0)
  invisible(gc())                       # start every timed run from a clean heap
  if (memory) {
    g0 <- gc(reset = TRUE)
    heap_before <- sum(g0[, 2])         # "used" (Mb), Ncells + Vcells
    rss_before <- proc_status_kb("VmRSS")
    reset_ok <- reset_peak_rss()
  }
  t0 <- now()
  family <- msg$family
  fit <- withCallingHandlers(
    if (is.null(family)) lmer(form, data = d, REML = reml)
    else glmer(form, data = d, family = family),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { warns <<- c(warns, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  elapsed <- now() - t0
  # doubles go out as "%.17g" text (jsonlite prints at most 15 digits); run.py
  # turns them back into floats, bit for bit
  cmp <- fit@devcomp$cmp
  out <- list(ok = TRUE, elapsed = num17(elapsed),
              # the criterion at the optimum (lme4 keeps no separate "fmin"):
              # REMLcrit(fit) for REML, deviance(fit) for ML, -2 logLik for a GLMM
              objective = num17(if (!is.null(family)) -2 * as.numeric(logLik(fit))
                                else if (reml) cmp[["REML"]] else cmp[["dev"]]),
              scale = if (is.null(family)) "crit" else "dev",
              laplace = if (is.null(family)) NULL
                        else num17(cmp[["ldL2"]] + cmp[["drsum"]] + cmp[["ussq"]]),
              feval = fit@optinfo$feval,
              optimizer = fit@optinfo$optimizer,
              theta = I(num17(getME(fit, "theta"))),
              beta = I(num17(fixef(fit))),
              sigma = num17(sigma(fit)),
              opt_message = if (is.null(fit@optinfo$message)) "" else as.character(fit@optinfo$message),
              conv_messages = I(as.character(unlist(fit@optinfo$conv$lme4$messages))),
              warnings = I(warns))
  if (memory) {
    g <- gc()
    # "max used" in Mb: column 6 of gc()'s matrix (Ncells + Vcells, R heap only)
    out$gc_max_used_mb <- sum(g[, 6])
    out$gc_used_before_mb <- heap_before
    out$rss_before_mb <- rss_before / 1024
    out$peak_rss_mb <- proc_status_kb("VmHWM") / 1024
    out$peak_reset <- reset_ok
  }
  rm(fit)
  reply(out)
}

cmd_versions <- function(msg) {
  reply(list(ok = TRUE, R = R.version.string,
             lme4 = as.character(packageVersion("lme4")),
             Matrix = as.character(packageVersion("Matrix")),
             blas = unname(extSoftVersion()[["BLAS"]]),
             lapack = La_library()))
}

con_in <- file("stdin", open = "r")
repeat {
  line <- readLines(con_in, n = 1L)
  if (!length(line)) break
  if (!nzchar(trimws(line))) next
  msg <- tryCatch(fromJSON(line, simplifyVector = FALSE), error = function(e) NULL)
  if (is.null(msg)) { reply(list(ok = FALSE, error = paste("bad command:", line))); next }
  if (identical(msg$cmd, "quit")) { reply(list(ok = TRUE)); break }
  res <- tryCatch({
    switch(msg$cmd,
           versions = cmd_versions(msg),
           load = cmd_load(msg),
           fit = cmd_fit(msg),
           drop = { if (exists(msg$id, envir = .datasets, inherits = FALSE))
                      rm(list = msg$id, envir = .datasets)
                    invisible(gc()); reply(list(ok = TRUE)) },
           reply(list(ok = FALSE, error = paste("unknown command", msg$cmd))))
    NULL
  }, error = function(e) e)
  if (inherits(res, "error")) reply(list(ok = FALSE, error = conditionMessage(res)))
}
