"""The shared training loop (``train``), its configuration, evaluation rollouts and statistics.

``robot-il train bc|diffusion`` and ``launch/train.launch.yaml`` run ``train``; the policies
themselves live in ``robot_il.policies``.
"""
