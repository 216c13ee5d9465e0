"""The operator's Settings: one table from variables to fields, the command line over both."""
from __future__ import annotations

import dataclasses

from yunshang.operator.runtime.settings import Settings, env_name


def test_every_field_reads_its_variable_typed_like_its_default():
    env = {"YUNSHANG_RESYNC_SECONDS": "3", "YUNSHANG_WORKERS": "4", "YUNSHANG_SIGNOFF_ROLES": "platform, security",
           "YUNSHANG_SIGNOFF_TENANT_DAYS": "1", "YUNSHANG_ELASTIC_COOLDOWN": "3600", "YUNSHANG_WEBHOOK_PORT": "",
           "YUNSHANG_LEASE": "op", "YUNSHANG_LEASE_DURATION": "6", "YUNSHANG_RENEW_DEADLINE": "4",
           "YUNSHANG_RETRY_PERIOD": "1", "YUNSHANG_IDENTITY": "me", "KUBECONFIG": "/k:/j"}
    s = Settings.load([], env)
    changed = {k: v for k, v in dataclasses.asdict(s).items() if v != getattr(Settings(), k)}
    assert changed == {"kubeconfig": "/k", "resync_seconds": 3.0, "workers": 4, "signoff_roles": ("platform", "security"),
                       "tenant_days": 1.0, "elastic_cooldown_seconds": 3600.0, "lease": "op", "identity": "me",
                       "lease_duration": 6.0, "renew_deadline": 4.0, "retry_period": 1.0}
    assert Settings.load(["--lease", "other", "--metrics-port", "9"], env).lease == "other"  # argv over env
    assert env_name("view_seconds") == "YUNSHANG_VIEW_SECONDS"


def test_the_webhook_token_file_wins_over_the_variable(tmp_path):
    (tmp_path / "t").write_text("from-file\n")
    env = {"YUNSHANG_WEBHOOK_TOKEN": "plain", "YUNSHANG_WEBHOOK_PORT": "1"}
    assert Settings.load([], env).webhook_token == "plain"
    assert Settings.load([], {**env, "YUNSHANG_WEBHOOK_TOKEN_FILE": str(tmp_path / "t")}).webhook_token == "from-file"
