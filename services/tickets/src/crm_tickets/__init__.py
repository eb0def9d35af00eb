"""CRM tickets service: Complaints and after-sales tickets with SLAs, assignment and satisfaction."""
