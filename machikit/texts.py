"""Every sentence a user reads, in Japanese first and English second.

Keep user-facing text here (one catalogue) so a town can fix a translation in
one place. Log lines for operators use `say()` too; technical details
(exception text, SQL) are appended untranslated.
"""

TEXTS: dict[str, tuple[str, str]] = {
    # generic
    "error": ("エラー: {detail}", "Error: {detail}"),
    "interrupted": ("中断しました。", "Interrupted."),
    "stopped": ("停止しました。", "Stopped."),
    "missing_extra": (
        "この機能には追加パッケージが必要です: pip install 'machikit[{extra}]'",
        "This command needs extra packages: pip install 'machikit[{extra}]'",
    ),
    # configuration
    "config_unreadable": (
        "設定ファイル {path} を読めません: {detail}",
        "Cannot read the config file {path}: {detail}",
    ),
    "config_invalid": ("設定が正しくありません: {detail}", "Invalid setting: {detail}"),
    "bad_database_url": (
        "データベースURLが分かりません: {url}（sqlite:///ファイル または postgresql://… を指定）",
        "Unknown database URL: {url} (use sqlite:///file or postgresql://…)",
    ),
    "bad_mqtt_url": (
        "MQTT URLが分かりません: {url}（mqtt://ユーザー:パスワード@ホスト:ポート）",
        "Unknown MQTT URL: {url} (use mqtt://user:password@host:port)",
    ),
    # storage
    "db_connect_failed": (
        "データベースに接続できません（{attempt}回目、{delay:.1f}秒後に再試行）: {detail}",
        "Cannot reach the database (attempt {attempt}, retrying in {delay:.1f} s): {detail}",
    ),
    "db_recovered": ("データベースに再接続しました。", "Reconnected to the database."),
    "timescaledb_missing": (
        "PostgreSQL に TimescaleDB 拡張がありません。docs/operations.md の手順で入れてください。",
        "TimescaleDB is not installed in this PostgreSQL. See docs/operations.md.",
    ),
    "timescaledb_found": (
        "TimescaleDB {version}（ライセンス: {license}）を使います。",
        "Using TimescaleDB {version} (licence: {license}).",
    ),
    "migrated": ("データベースを版 {version} にしました。", "Database schema is at version {version}."),
    "retention_done": (
        "保存期間を過ぎたデータを消しました: {detail}",
        "Removed data past its retention period: {detail}",
    ),
    # MQTT
    "mqtt_connected": ("MQTTブローカー {host}:{port} に接続しました。", "Connected to the MQTT broker {host}:{port}."),
    "mqtt_refused": (
        "MQTTブローカーが接続を拒否しました: {detail}（ユーザー名・パスワードを確認）",
        "The MQTT broker refused the connection: {detail} (check user name and password)",
    ),
    "mqtt_lost": (
        "MQTTブローカーとの接続が切れました。自動で再接続します: {detail}",
        "Lost the MQTT broker; reconnecting by itself: {detail}",
    ),
    "mqtt_unreachable": (
        "MQTTブローカー {host}:{port} に接続できません: {detail}",
        "Cannot reach the MQTT broker {host}:{port}: {detail}",
    ),
    # collector
    "collector_started": (
        "収集を開始しました（クライアントID {client_id}、購読 {topic}）。",
        "Collector started (client id {client_id}, subscribed to {topic}).",
    ),
    "collector_counters": (
        "受信 {received}・保存 {stored}・重複 {duplicates}・隔離 {quarantined}・待ち {pending}・遅れ {lag_ms} ms",
        "received {received}, stored {stored}, duplicates {duplicates}, "
        "quarantined {quarantined}, pending {pending}, lag {lag_ms} ms",
    ),
    "no_stats": (
        "収集プロセスの統計がまだありません（machikit collect / serve は動いていますか？）",
        "No collector statistics yet (is machikit collect / serve running?)",
    ),
    # embedded server and demo
    "serve_ready": (
        "まちキットのサーバーが動いています。MQTT: {mqtt}　データ: {database}　止めるには Ctrl-C。",
        "machikit server is running. MQTT: {mqtt}  data: {database}  Press Ctrl-C to stop.",
    ),
    "port_in_use": (
        "ポート {port} は使用中です。別のサーバーが動いていませんか？（MACHIKIT_MQTT_URL で変更可）",
        "Port {port} is already in use. Is another server running? (change it with MACHIKIT_MQTT_URL)",
    ),
    "demo_intro": (
        "デモ: 模擬デバイス {count} 台（バス・ごみ収集車・積雪計・プリンターブザー）がデータを送ります。",
        "Demo: {count} simulated devices (bus, garbage truck, snow gauges, printer buzzer) send data.",
    ),
    "reference_value": ("参考値", "reference"),
    "demo_stored": ("保存済み: {summary}", "Stored so far: {summary}"),
    "demo_done": ("デモを終了しました。保存件数: {summary}", "Demo finished. Rows stored: {summary}"),
    # test services
    "needs_root": (
        "テスト用サービスの準備には root 権限が必要です（sudo で実行するか、"
        "MACHIKIT_TEST_DATABASE_URL と MACHIKIT_TEST_MQTT_URL で既存のサービスを指定）。",
        "Building the test services needs root (run with sudo, or point "
        "MACHIKIT_TEST_DATABASE_URL and MACHIKIT_TEST_MQTT_URL at your own services).",
    ),
    "testbed_building": (
        "テスト用の Debian 13 環境を作っています（初回だけ、1分ほど）: {path}",
        "Building the Debian 13 root for the test services "
        "(first time only, about a minute): {path}",
    ),
    "testbed_built": (
        "Debian 13 環境ができました（{seconds:.0f} 秒）。",
        "Root built in {seconds:.0f} s.",
    ),
    "testbed_up": (
        "テスト用サービスが動いています（{seconds:.1f} 秒）。接続情報: {path}"
        "（machikit dev services env）",
        "Test services are up ({seconds:.1f} s). Connection details: {path} "
        "(machikit dev services env)",
    ),
    "testbed_down": ("テスト用サービスを停止しました。", "Test services stopped."),
    "testbed_reset": (
        "MQTT の保存状態を消し、テスト用データベースを {count} 個削除しました。",
        "Cleared the MQTT broker's saved state and dropped {count} test database(s).",
    ),
    "testbed_absent": (
        "テスト用サービスがありません（{path}）。machikit dev services up を実行してください。",
        "No test services in {path}. Run: machikit dev services up",
    ),
    "testbed_running": (
        "{service}: 動作中（{detail}）",
        "{service}: running ({detail})",
    ),
    "testbed_not_running": ("{service}: 停止中", "{service}: not running"),
    "testbed_micropython": ("MicroPython: {path}", "MicroPython: {path}"),
    "testbed_failed": (
        "テスト用サービスの準備に失敗しました: {step}（ログの最後を下に表示）",
        "Test services failed: {step} (end of the log below)",
    ),
}


def say_short(key: str) -> str:
    """'日本語/English' for a short label."""
    ja, en = TEXTS[key]
    return ja + "/" + en


def say(key: str, **values: object) -> str:
    """'日本語 / English' for one catalogue entry, with values filled in."""
    ja, en = TEXTS[key]
    return ja.format(**values) + " / " + en.format(**values)
