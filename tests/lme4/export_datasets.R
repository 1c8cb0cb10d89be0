# Export the data sets bundled with mixedfit from R.
#
# Run from the repository root:
#     Rscript tests/lme4/export_datasets.R
#
# For each data set <name> this writes
#     mixedfit/datasets/data/<name>.csv.gz  gzip CSV; numbers written with the
#                                           shortest of 15/16/17 significant
#                                           digits that reads back bit-identical
#     mixedfit/datasets/data/<name>.json    column types and factor levels in
#                                           R's level order
# and then re-reads every file (with read_dataset() of common.R, as the other
# scripts do) and checks it is identical() to the R object.

suppressPackageStartupMessages({
  library(lme4)
  library(mlmRev)
  library(jsonlite)
})

# common.R, next to this script: data_dir, format_num(), read_dataset()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

datasets <- list(
  sleepstudy = "lme4", Dyestuff = "lme4", Dyestuff2 = "lme4",
  Penicillin = "lme4", Pastes = "lme4", cake = "lme4", InstEval = "lme4",
  Machines = "nlme",
  Hsb82 = "mlmRev", Chem97 = "mlmRev", egsingle = "mlmRev",
  # GLMM examples (glmer_cases.R)
  cbpp = "lme4", grouseticks = "lme4", VerbAgg = "lme4", Contraception = "mlmRev"
)

get_dataset <- function(name, pkg) {
  env <- new.env()
  utils::data(list = name, package = pkg, envir = env)
  d <- get(name, envir = env)
  # Machines is an nlme groupedData: keep only the plain data.frame.
  d <- as.data.frame(d)
  attr(d, "formula") <- NULL
  attr(d, "labels") <- NULL
  attr(d, "inner") <- NULL
  attr(d, "outer") <- NULL
  attr(d, "units") <- NULL
  attr(d, "FUN") <- NULL
  attr(d, "order.groups") <- NULL
  class(d) <- "data.frame"
  rownames(d) <- NULL
  d
}

column_spec <- function(x) {
  if (is.factor(x)) {
    list(type = "factor", levels = I(levels(x)), ordered = is.ordered(x))
  } else if (is.integer(x)) {
    list(type = "integer")
  } else if (is.numeric(x)) {
    list(type = "numeric")
  } else {
    stop("unsupported column class: ", paste(class(x), collapse = "/"))
  }
}

write_dataset <- function(d, name, pkg) {
  spec <- lapply(d, column_spec)
  txt <- lapply(d, function(x) {
    if (is.factor(x)) as.character(x)
    else if (is.integer(x)) as.character(x)
    else format_num(x)
  })
  txt <- as.data.frame(txt, stringsAsFactors = FALSE, optional = TRUE)
  names(txt) <- names(d)
  is_fac <- which(vapply(d, is.factor, logical(1)))
  csv <- file.path(data_dir, paste0(name, ".csv.gz"))
  con <- gzfile(csv, open = "wb", compression = 9)
  utils::write.table(txt, con, sep = ",", row.names = FALSE, col.names = TRUE,
                     quote = if (length(is_fac)) unname(is_fac) else FALSE,
                     na = "", eol = "\n", qmethod = "double", fileEncoding = "")
  close(con)
  meta <- list(
    name = name,
    source_package = pkg,
    source_version = as.character(utils::packageVersion(pkg)),
    nrow = nrow(d),
    ncol = ncol(d),
    columns = spec
  )
  jsonlite::write_json(meta, file.path(data_dir, paste0(name, ".json")),
                       auto_unbox = TRUE, pretty = TRUE, digits = NA)
  invisible(csv)
}

for (name in names(datasets)) {
  pkg <- datasets[[name]]
  d <- get_dataset(name, pkg)
  write_dataset(d, name, pkg)
  back <- read_dataset(name)
  if (!identical(back, d)) {
    print(all.equal(back, d))
    stop("data set ", name, " does not read back identically")
  }
  cat(sprintf("%-11s %6d x %2d  %9d bytes csv.gz  %8d bytes json  (read back identical)\n",
              name, nrow(d), ncol(d),
              file.size(file.path(data_dir, paste0(name, ".csv.gz"))),
              file.size(file.path(data_dir, paste0(name, ".json")))))
}
tot <- sum(file.size(list.files(data_dir, full.names = TRUE)))
cat(sprintf("total size of %s: %.1f kB\n", data_dir, tot / 1024))
