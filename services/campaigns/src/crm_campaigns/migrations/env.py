from crm_shared.migrations import run_env

from crm_campaigns.models import metadata

run_env(metadata)
