"""CRM churn service: Calibrated churn early warning with reasons, and win-back triggers."""
