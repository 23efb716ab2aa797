"""The shared training loops, their configuration, evaluation rollouts and statistics.

``robot-il train bc|diffusion`` and ``launch/train.launch.yaml`` run the offline ``train``
(``trainer``); ``robot-il train opt-ail`` and ``launch/train_opt_ail.launch.yaml`` run the
online ``train_online`` (``online``, with its buffers in ``replay``). The policies
themselves live in ``robot_il.policies``.
"""
