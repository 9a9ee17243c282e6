"""Synthetic CT planning series with exact ground truth, for QA of the planner.

Public API:
- :data:`sample_series.catalogue.CASES` / :func:`~sample_series.catalogue.list_cases`: the
  named cases (:class:`~sample_series.spec.CaseSpec`);
- :func:`sample_series.phantom.build_case` -> :class:`~sample_series.phantom.SampleCase`
  (datasets, labels, HU volume, geometry, truth), :func:`~sample_series.phantom.write_case`,
  :func:`~sample_series.phantom.load_truth`, :func:`~sample_series.phantom.load_labels`;
- :class:`sample_series.tissues.LabelCode`: codes of the label volume;
- :func:`sample_series.cli.register`: the ``samples`` subcommand.

The truth is computed from the analytic model, never with ``planner``: it checks the planner.
"""
