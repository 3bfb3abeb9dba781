"""Research studies built on the zoo and the training loop: architecture comparisons
(:mod:`~visionfw.studies.compare`), training-set rankings (:mod:`~visionfw.studies.rank_datasets`), cached
runs (:mod:`~visionfw.studies.runs`), their tables, plots and HTML reports (:mod:`~visionfw.studies.reports`,
:mod:`~visionfw.studies.report_html`) and model cost (:mod:`~visionfw.studies.profiling`)."""
