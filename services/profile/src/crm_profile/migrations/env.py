from crm_shared.migrations import run_env

from crm_profile.models import metadata

run_env(metadata)
