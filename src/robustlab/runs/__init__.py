"""The run contract: what a run leaves on disk, how it is named, written, found and identified.

Pipelines write through this package and the report and the plots read through it, so the names of
result files, the schema of metrics.json and the rule for "this job is done" have one owner.
"""
