"""Research studies built on the zoo and the training loop: architecture comparisons
(:mod:`~visionfw.studies.compare`), training-set rankings (:mod:`~visionfw.studies.rank_datasets`), cached
runs (:mod:`~visionfw.studies.runs`), their tables and plots (:mod:`~visionfw.studies.reports`), their HTML
reports (:mod:`~visionfw.studies.report_html`, built from :mod:`~visionfw.studies.report_page`,
:mod:`~visionfw.studies.report_images` and :mod:`~visionfw.studies.report_svg`) and model cost
(:mod:`~visionfw.studies.profiling`)."""
