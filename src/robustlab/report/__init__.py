"""The report: claims vs runs (claims), intervals' use (robustlab.stats), measured tables (tables,
retrain, inherent), Markdown and LaTeX (render), merged per-profile sections (sections) and the
``robustlab-report`` command (cli). It reads finished runs only."""
