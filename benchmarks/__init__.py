"""Benchmarks of the DocuSign billing pipeline (issue #4); run with `bash benchmarks/run.sh`."""
