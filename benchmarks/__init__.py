"""handbench: comparative benchmarking of pre-training for 3D hand pose.

A run's life, and the module that owns each part of it (read in this order):

``cli``        parses the command line and hands over; nothing else.
``compose``    the config: profile, method, budget and overrides composed and validated;
               ``config`` derives the run id from its semantic keys.
``record``     the contract: the result record's type, how it is written, read and checked.
``launch``     where a run executes (here, a local subprocess, a SLURM job) and submitting it.
``job``        what a submitted job runs: runs in order, checkpointed and requeued on SLURM's
               stop signal.
``jobstate``   ``job.json``: which job holds a run and how far it got, before the record exists.
``runner``     one run, config to record: data, pre-training (cached), probes, fine-tuning,
               evaluation; the record is written here and nowhere else.
``pretrain``   a method's pre-training, planned from the budget and cached by its key.
``engine``     the one training loop both phases use: steps, checkpoints, exact resume.
``status``     ``bench status``: a run's state from its record, its job file and the scheduler.
``sweep``      a study file expanded into runs, planned, and submitted through ``launch``.
``compute``    the compute plan: budget -> pre-training and fine-tuning steps, estimated for
               dry runs; ``budget`` parses budgets, ``flops`` counts FLOPs, ``units`` writes them.
"""
