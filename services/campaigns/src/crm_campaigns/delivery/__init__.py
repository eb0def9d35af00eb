"""Delivery channels: e-mail over SMTP (committed at DATA's point of no return) and signed webhooks.

Each ``send`` is one attempt classified for the worker ("sent", "retry", "bounced"/"failed"); the
retry schedule lives in the database, not here, so it survives restarts.
"""

from crm_campaigns.delivery.smtp import SmtpOutcome, SmtpSender, SmtpSettings, build_email
from crm_campaigns.delivery.webhook import WebhookOutcome, WebhookSender

__all__ = ["SmtpOutcome", "SmtpSender", "SmtpSettings", "WebhookOutcome", "WebhookSender", "build_email"]
