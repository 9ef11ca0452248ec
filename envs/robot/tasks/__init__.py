"""Robot tasks: one module per task, each a :class:`chronotope.envs.robot.env.RobotEnv` subclass."""
