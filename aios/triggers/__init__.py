"""What starts agents besides a person: Schedules (schedules.py); every start goes through
admission (aios/governance/admission.py). See docs/ARCHITECTURE.md."""
