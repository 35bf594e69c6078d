"""Experiment glue above the method's layers: configs, tasks for the loop, runs and result files."""
