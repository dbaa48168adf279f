"""handbench's core: the contracts and the machinery, with no opinion on what is compared.

The bottom layer (see ARCHITECTURE.md): it imports nothing from ``methods``, ``eval`` or
``orchestration``. Its contracts: ``config`` (the schema and its choices), ``run`` (the resolved
``Run``), ``budget`` and ``compute`` (the budget and the compute plan), ``record`` (the result
record), ``engine`` (the one training loop), ``backbone_weights`` (declared initial weights),
``pose_model`` / ``pose_task`` (the model every method is judged with and its training step).
"""
