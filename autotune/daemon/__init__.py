"""The online tuner: telemetry → features → policy → guard → actuators, once per interval."""
