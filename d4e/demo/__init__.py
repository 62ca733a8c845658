"""``d4e demo``: the whole pipeline out of the box (shipped prior, shared clip, report).

Public API:

* :func:`d4e.demo.run.run_demo` / :class:`d4e.demo.run.DemoResult`: the demo as a library call;
* :func:`d4e.demo.config.load_demo_config` / :class:`d4e.demo.config.DemoConfig` (``configs/demo.yaml``);
* :func:`d4e.demo.export.export_shipped_prior`: a training checkpoint -> the shipped ``assets/prior.d4e``.
"""
