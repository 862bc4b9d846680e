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
    "linux_only": (
        "このコマンドは Linux（Raspberry Pi など）専用です。この OS にない {module} を使います",
        "This command runs on Linux only (a Raspberry Pi…): it needs {module}, which this OS does not have",
    ),
    "missing_extra": (
        "このコマンドに必要なパッケージ（{module}、{extra}）が入っていません。まちキットのフォルダーで: {install}",
        "This command needs packages that are not installed ({module}, from {extra}). In the machikit folder run: {install}",
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
    # public API and web server (collector/api)
    "web_ready": ("公開地図とAPI: {url}", "Public map and API: {url}"),
    "web_failed": (
        "Webサーバーを {host}:{port} で起動できません（ポートが使用中？ 設定 web.port、環境変数 MACHIKIT_WEB__PORT）: {detail}",
        "Cannot start the web server on {host}:{port} (port in use? setting web.port, environment variable MACHIKIT_WEB__PORT): {detail}",
    ),
    "api_description": (
        "まちキットの公開API。公開ポリシーが許すものだけを返します（docs/api.md）。",
        "machikit public API. Returns only what the publish policy allows (docs/api.md).",
    ),
    "api_no_town": ("その町はありません。", "No such town."),
    "api_no_device": ("その名前の公開機器はありません。", "No public device by that name."),
    "api_not_shown": (
        "その車両は今は表示していません（運行時間外か車庫）。",
        "That vehicle is not shown now (off duty or in its depot).",
    ),
    "api_bad_request": ("リクエストが正しくありません: {detail}", "Bad request: {detail}"),
    "api_too_many_clients": (
        "接続が多すぎます。少し待ってからもう一度。",
        "Too many live connections. Please try again shortly.",
    ),
    "api_database_down": (
        "データベースに接続できません。最後のデータを表示し続けます: {detail}",
        "Database unavailable; the last data stays on show: {detail}",
    ),
    "api_bad_policy": (
        "公開設定が読めないため非表示にします: {detail}",
        "Hidden because its publish settings are unreadable: {detail}",
    ),
    "api_poll_failed": ("ライブ更新で予期しないエラー", "Unexpected error in the live poller"),
    "api_no_public_devices": (
        "公開している機器がまだありません（machikit demo で試せます）。",
        "No public devices yet (try machikit demo).",
    ),
    "serve_ready": (
        "まちキットのサーバーが動いています。MQTT: {mqtt}　データ: {database}　止めるには Ctrl-C。",
        "machikit server is running. MQTT: {mqtt}  data: {database}  Press Ctrl-C to stop.",
    ),
    "port_in_use": (
        "ポート {port} は使用中です。別のサーバー（machikit や Mosquitto）が動いていませんか？ 内蔵ブローカーのポートは設定 embedded_mqtt_port（環境変数 MACHIKIT_EMBEDDED_MQTT_PORT）で変えられます",
        "Port {port} is already in use. Is another server (machikit or Mosquitto) running? The embedded broker's port is the setting embedded_mqtt_port (environment variable MACHIKIT_EMBEDDED_MQTT_PORT)",
    ),
    "demo_intro": (
        "デモ: 室蘭市の模擬の機器 {count} 台（実在の路線を走るバス・ごみ収集車・祭りの屋台・積雪計2台・窓口プリンターの取り忘れブザー）がデータを送ります。",
        "Demo: {count} simulated devices in Muroran (a bus on a real route, a garbage truck, a festival stall, two snow gauges, a counter printer buzzer) send data.",
    ),
    "demo_open_map": ("地図を開いてください: {url}", "Open the map: {url}"),
    "demo_in_depot": ("車庫内・地図には非表示", "in depot, hidden on the map"),
    "reference_value": ("参考値", "reference"),
    "demo_stored": ("保存済み: {summary}", "Stored so far: {summary}"),
    "demo_done": ("デモを終了しました。保存件数: {summary}", "Demo finished. Rows stored: {summary}"),
    # benchmarks: ingest (machikit bench ingest)
    "bench_bad_option": ("{option} の値が正しくありません: {value}", "Invalid value for {option}: {value}"),
    "bench_no_services": (
        "{variable} がありません。--database-url / --mqtt-url を指定するか machikit dev services up を実行してください。",
        "{variable} is not set. Give --database-url / --mqtt-url or run: machikit dev services up",
    ),
    "bench_run_load": ("計測中: {rate} msg/s を {seconds:.0f} 秒…", "Measuring: {rate} msg/s for {seconds:.0f} s…"),
    "bench_run_drain": (
        "計測中: 滞留 {backlog} 件を収集プロセス {workers} 個で処理…",
        "Measuring: draining a backlog of {backlog} with {workers} worker(s)…",
    ),
    "bench_run_naive": (
        "計測中: 1件ずつ書く素朴な方式で滞留 {backlog} 件…",
        "Measuring: the naive one-row-per-commit consumer on a backlog of {backlog}…",
    ),
    "bench_run_profile": ("計測中: py-spy で収集プロセスを記録（{path}）…", "Measuring: profiling the collector with py-spy ({path})…"),
    "bench_title": (
        "取り込み性能（CPU {cpus} 個、{mosquitto}、PostgreSQL {postgres}）",
        "Ingest benchmark ({cpus} CPUs, {mosquitto}, PostgreSQL {postgres})",
    ),
    "bench_loads_title": (
        "一定負荷: 収集プロセス1個、QoS 1（CPU% は1コア=100）",
        "Offered load into one collector, QoS 1 (CPU %: one core = 100)",
    ),
    "bench_drains_title": (
        "滞留の一括処理: 停止中に溜まったメッセージを処理（msg/s = 最初から最後の受信まで）",
        "Backlog drain: messages queued while stopped (msg/s = first to last row received)",
    ),
    "bench_ratio": ("収集プロセス1個は素朴な方式の {ratio} 倍。", "One collector is {ratio}× the naive consumer."),
    "bench_targets_title": ("目標", "Targets"),
    "bench_profile_title": (
        "収集プロセスの時間の使い道（py-spy、{samples} サンプル、{file}）",
        "Where the collector's time goes (py-spy, {samples} samples, {file})",
    ),
    "bench_notes": (
        "commit の遅延は収集プロセスの1秒ごとの統計（p99: 全期間のヒストグラムから、1 ms 刻みの上限値。括弧内は最悪の1秒の p99）、受信の遅延はDBの received_at − time（全行）。",
        "commit latency: the collector's per-second stats (p99: over the whole run from merged histograms, the 1 ms bucket's upper bound; in brackets the worst single second's p99); receive latency: received_at − time in the DB (every row).",
    ),
    "bench_saved": ("結果を保存しました: {path}", "Report written to {path}"),
    # live stream and API benchmarks (machikit bench live / api)
    "bench_live_run": ("計測中: ライブ配信、同時接続 {clients} で {seconds:.0f} 秒…", "Measuring: live stream, {clients} clients for {seconds:.0f} s…"),
    "bench_api_run": ("計測中: 車両API、毎秒 {rate} リクエストで {seconds:.0f} 秒×{runs}…", "Measuring: vehicles API at {rate} req/s, {runs} runs of {seconds:.0f} s…"),
    "bench_live_title": (
        "ライブ配信の遅延（CPU {cpus} 個、{server}、ポーリング {poll} 秒、バス {fleet} 台が {interval:.0f} 秒ごとに送信）",
        "Live stream fan-out ({cpus} CPUs, {server}, poll every {poll} s, {fleet} buses each sending every {interval:.0f} s)",
    ),
    "bench_api_title": (
        "車両APIの応答時間（CPU {cpus} 個、{server}、各回 {seconds:.0f} 秒、表示中の車両 {shown} 台）",
        "Vehicles API latency ({cpus} CPUs, {server}, {seconds:.0f} s per run, {shown} vehicles shown)",
    ),
    "bench_api_live": (
        "計測中はライブ配信を {clients} 人が受信（遅延 p99 {p99} ms、切断 {dropped}）。",
        "Meanwhile {clients} clients listened to the live stream (delay p99 {p99} ms, dropped {dropped}).",
    ),
    "bench_nofile": (
        "開けるファイル数の上限（RLIMIT_NOFILE）: ベンチが上限まで上げて {soft}（上限 {hard}）。サーバーのプロセスもこの値を引き継ぎます（接続1つにつき1つ）。",
        "Open-files limit (RLIMIT_NOFILE): the bench raised it to {soft} (hard limit {hard}); the server processes inherit it (one per connection).",
    ),
    "bench_live_notes": (
        "遅延 = クライアントの受信時刻 − 位置の t（送信時刻、同じ時計）。build = 更新の now_ms − t（収集・保存・ポーリング待ち）、fan-out = 受信 − now_ms（全員への送信）。CPU% は1コア=100、API RSS はピーク。client lag = クライアント側のイベントループの遅れ（大きければクライアントが律速）。",
        "delay = client receive time − the position's t (publish time, same clock). build = the update's now_ms − t (collector, commit, wait for the poll); fan-out = receive − now_ms (sending to everyone). CPU %: one core = 100; API RSS: peak. client lag: how late the client's own event loop ran (large: the clients, not the server, are the limit).",
    ),
    "bench_api_notes": (
        "応答時間は予定送信時刻から本文受信まで（オープンループ: 待ち時間も含む）。service = 実際の送信から受信まで。conn wait = 全接続が使用中で待った時間。client lag = クライアント自身の遅れ（小さければクライアントは律速でない）。車両は計測中も動いています（データとETagが変わる）。",
        "latency: from the moment a request was due to its last byte (open loop: waiting counts). service: from actually sending it. conn wait: time all keep-alive connections were busy. client lag: how late the client itself started a request (small: the client is not the limit). The fleet keeps moving during the runs (data and ETag change).",
    ),
    "bench_api_profile_title": (
        "API プロセスの時間の使い道（py-spy、{samples} サンプル、{file}）",
        "Where the API process's time goes (py-spy, {samples} samples, {file})",
    ),
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
    "testbed_installing": ("{package} をインストールしています…", "Installing {package}…"),
    "testbed_installed": ("{package} を入れました（{seconds:.0f} 秒）。", "{package} installed in {seconds:.0f} s."),
    "testbed_no_chromium": (
        "Chromium がありません（apt-get も無し）。ブラウザのテストには Debian の chromium が必要です。",
        "Chromium is missing (and no apt-get). The browser tests need Debian's chromium package.",
    ),
    "testbed_micropython": ("MicroPython: {path}", "MicroPython: {path}"),
    "testbed_failed": (
        "テスト用サービスの準備に失敗しました: {step}（ログの最後を下に表示）",
        "Test services failed: {step} (end of the log below)",
    ),
    # --- public map page (sent to the browser)
    "map_title": ("{town} の運行状況", "{town}: live map"),  # used when [map] title is not set
    "map_lang_switch": ("English", "日本語"),  # the button names the other language
    "map_loading": ("読み込み中…", "Loading…"),
    "map_load_failed": ("データを読み込めませんでした。自動で再試行します。", "Could not load the data. Retrying by itself."),
    "map_conn_connecting": ("接続しています…", "Connecting…"),
    "map_conn_live": ("接続中（自動で更新）", "Live (updates by itself)"),
    "map_conn_down": ("更新停止中・再接続しています", "Updates paused, reconnecting"),
    "map_conn_polling": ("更新停止中・10秒ごとに確認しています", "Live updates stopped, checking every 10 s"),
    "map_conn_offline": ("更新停止中・サーバーに接続できません", "Updates stopped: cannot reach the server"),
    "map_region": ("地図", "Map"),
    "map_zoom_in": ("拡大", "Zoom in"),
    "map_zoom_out": ("縮小", "Zoom out"),
    "map_layers": ("表示する種類", "What to show"),
    "map_tiles_failed": ("背景の地図を読み込めませんでした。車両と計測器の位置は表示しています。", "The background map could not load. Vehicles and gauges are still shown."),
    "map_list": ("一覧", "List"),
    "map_list_title": ("車両と計測器の一覧", "Vehicles and gauges"),
    "map_close": ("閉じる", "Close"),
    "map_empty": ("いま表示できる車両・計測器はありません。", "Nothing to show right now."),
    "map_show_on_map": ("地図で見る", "Show on map"),
    "map_no_location": ("位置は未設定です", "No location set"),
    "map_kind_bus": ("バス", "Bus"),
    "map_kind_garbage_truck": ("ごみ収集車", "Garbage truck"),
    "map_kind_stall": ("屋台", "Festival stall"),
    "map_kind_snow_gauge": ("積雪計", "Snow gauge"),
    "map_kind_sensor": ("センサー", "Sensor"),
    "map_updated": ("最終更新 {age}", "Updated {age}"),
    "map_age_seconds": ("{n}秒前", "{n} s ago"),
    "map_age_minutes": ("{n}分前", "{n} min ago"),
    "map_age_hours": ("{n}時間前", "{n} h ago"),
    "map_age_days": ("{n}日前", "{n} days ago"),
    "map_stale": ("更新が止まっています", "Not updating"),
    "map_speed": ("速度 {value} km/h", "Speed {value} km/h"),
    "map_track": ("線は過去30分の経路です。", "The line shows the last 30 minutes."),
    "map_sensor_snow_depth": ("積雪", "Snow depth"),
    "map_sensor_air_temp": ("気温", "Air temperature"),
    "map_reference_note": ("参考値: 自作の計測器による値で、公式の観測値ではありません。", "Reference value: from a self-built instrument, not an official observation."),
    "map_reference_short": ("参考値", "reference"),
    "map_history_title": ("過去24時間の積雪（1時間ごとの平均）", "Snow depth, last 24 hours (hourly average)"),
    "map_history_time": ("時刻", "Time"),
    "map_history_value": ("積雪", "Depth"),
    "map_history_table": ("数値の表", "Table of values"),
    "map_history_none": ("過去24時間のデータはありません。", "No data in the last 24 hours."),
    "map_history_failed": ("履歴を読み込めませんでした。", "Could not load the history."),
    # device registry and credentials (collector/registry.py)
    "device_bad_name": ("名前 {value!r} は使えません（a-z, 0-9, '-', '_'、32文字まで）", "The name {value!r} is not allowed (a-z, 0-9, '-', '_', up to 32)"),
    "device_bad_kind": ("種類 {kind!r} は使えません。使える種類: {kinds}", "Unknown kind {kind!r}. Kinds: {kinds}"),
    "device_bad_setting": ("設定が読めません: {detail}", "Cannot read the setting: {detail}"),
    "device_exists": ("機器 {town}/{name} はもう登録されています（新しいパスワードは machikit device password）", "The device {town}/{name} is already registered (new password: machikit device password)"),
    "device_unknown": ("機器 {town}/{name} は登録されていません", "No device {town}/{name} is registered"),
    "device_added": ("機器 {town}/{name} を登録しました。MQTTユーザー名: {user}", "Registered the device {town}/{name}. MQTT user: {user}"),
    "device_password_once": ("パスワード（表示はこの一度だけです。控えてください）: {password}", "Password (shown only this once; write it down): {password}"),
    "device_new_password": ("{user} の新しいパスワードを作りました。ブローカーに反映すると古いパスワードは使えなくなります。", "Made a new password for {user}. The old one stops working once the broker has the change."),
    "device_revoked": ("機器 {town}/{name} を無効にしました。ブローカーに反映すると接続できなくなります。", "Revoked the device {town}/{name}. It is refused once the broker has the change."),
    "device_broker_files": ("ブローカー用ファイルを書きました: {passwd}, {acl}。Mosquitto が読めるようにして読み直させてください: sudo chown mosquitto: {passwd} {acl} のあと sudo systemctl reload mosquitto（Docker なら docker compose kill -s SIGHUP mosquitto）", "Wrote the broker files {passwd} and {acl}. Make them Mosquitto's and make it read them again: sudo chown mosquitto: {passwd} {acl}, then sudo systemctl reload mosquitto (Docker: docker compose kill -s SIGHUP mosquitto)"),
    "device_broker_files_embedded": ("内蔵ブローカー用のファイルを書きました: {passwd}, {acl}。すぐに使われます（再起動は不要）", "Wrote the embedded broker's files {passwd} and {acl}. They apply at once (no restart)"),
    "device_applied_embedded": ("内蔵ブローカーに反映しました（{folder}、再起動は不要）", "Applied to the embedded broker ({folder}; no restart)"),
    "device_apply_embedded": ("内蔵ブローカーで機器ごとのパスワードを使うには: machikit device broker-files --out {folder}（すぐに使われます。再起動は不要）", "To use per-device passwords on the embedded broker: machikit device broker-files --out {folder} (applies at once, no restart)"),
    "device_apply_mosquitto": ("Mosquitto に反映するには: machikit device broker-files --out /etc/mosquitto/machikit、sudo chown mosquitto: /etc/mosquitto/machikit/passwd /etc/mosquitto/machikit/acl、sudo systemctl reload mosquitto", "To apply it to Mosquitto: machikit device broker-files --out /etc/mosquitto/machikit, sudo chown mosquitto: /etc/mosquitto/machikit/passwd /etc/mosquitto/machikit/acl, sudo systemctl reload mosquitto"),
    "device_list_empty": ("登録された機器はありません", "No devices are registered"),
    "device_col_town": ("町", "town"),
    "device_col_name": ("名前", "name"),
    "device_col_kind": ("種類", "kind"),
    "device_col_public": ("公開", "public"),
    "device_col_user": ("MQTTユーザー", "MQTT user"),
    "device_col_state": ("状態", "state"),
    "device_col_settings": ("設定", "settings"),
    "device_active_state": ("有効", "active"),
    "device_revoked_state": ("無効", "revoked"),
    # workshop (machikit/workshop/)
    "workshop_roster_unreadable": ("名簿 {path} を読めません: {detail}", "Cannot read the roster {path}: {detail}"),
    "workshop_roster_empty": ("名簿に参加者の行がありません。", "The roster has no participant rows."),
    "workshop_roster_missing_column": ("名簿の1行目に列 {column} がありません（名前/participant, アプリ/app は必須）", "The roster's first row has no column {column} (名前/participant and アプリ/app are required)"),
    "workshop_roster_no_participant": ("{row}行目: 名前が空です", "Row {row}: the participant's name is empty"),
    "workshop_roster_bad_app": ("{row}行目: アプリ {app!r} はありません（使えるもの: {apps}）", "Row {row}: unknown app {app!r} (use one of: {apps})"),
    "workshop_roster_bad_public": ("{row}行目: 公開の欄 {value!r} が分かりません（はい/いいえ、1/0）", "Row {row}: cannot read public {value!r} (yes/no, 1/0)"),
    "workshop_roster_bad_name": ("{row}行目: 機器名 {name!r} は使えません（a-z, 0-9, '-', '_'、32文字まで）", "Row {row}: the device name {name!r} is not allowed (a-z, 0-9, '-', '_', up to 32)"),
    "workshop_roster_duplicate": ("{row}行目: 機器名 {name} は{first}行目と重複しています", "Row {row}: the device name {name} is already used in row {first}"),
    "workshop_bad_town": ("町の名前 {town!r} は使えません（a-z, 0-9, '-', '_'）", "The town name {town!r} is not allowed (a-z, 0-9, '-', '_')"),
    "workshop_devices_unreadable": ("機器ファイル {path} を読めません: {detail}", "Cannot read the devices file {path}: {detail}"),
    "workshop_prepare_other_town": ("{path} は町 {town} のものです。別の --out を指定してください", "{path} belongs to the town {town}: use another --out"),
    "workshop_prepare_orphan": ("{row}行目: 機器 {device} は登録済みですが devices.json にありません（パスワード不明）。machikit device revoke で取り消してからやり直してください", "Row {row}: the device {device} is registered but not in devices.json (its password is unknown). Revoke it with machikit device revoke, then run again"),
    "workshop_prepare_exists": ("{device} は作成済みです。今の認証情報をそのまま使います", "{device} exists already: keeping its credentials"),
    "workshop_prepare_added": ("{device} を登録しました（{participant}）", "Registered {device} ({participant})"),
    "workshop_prepare_done": ("{count}台の準備ができました。{devices}（パスワード入り・他人に渡さない）、ラベル {labels}（{pages}ページ）", "{count} devices ready: {devices} (holds passwords, keep it private), labels {labels} (pages: {pages})"),
    "workshop_wifi_password": ("Wi-Fi {ssid} のパスワード: ", "Wi-Fi {ssid} password: "),
    "workshop_flash_waiting": ("ボードをUSBでつないでください（残り{left}台、Ctrl-C で終了）", "Plug in a board by USB ({left} left, Ctrl-C to stop)"),
    "workshop_flash_start": ("{port}: {device}（{participant}）を書き込み中…", "{port}: flashing {device} ({participant})…"),
    "workshop_flash_done": ("{port}: {device} の書き込みが終わりました。抜いて次のボードをどうぞ", "{port}: {device} flashed. Unplug it and plug in the next board"),
    "workshop_flash_failed": ("{port}: {device} の書き込みに失敗しました。直してから差し直してください: {detail}", "{port}: flashing {device} failed. Fix it, then plug the board in again: {detail}"),
    "workshop_flash_known": ("{port}: このボードは {device} として書き込み済みです（何もしません）", "{port}: this board is already {device} (nothing to do)"),
    "workshop_flash_all_done": ("{port}: 名簿の機器はすべて書き込み済みです", "{port}: every device of the roster is flashed already"),
    "workshop_flash_online": ("{device} がオンラインになりました", "{device} is online"),
    "workshop_flash_not_online": ("{device} が{seconds}秒たってもオンラインになりません（Wi-Fi とブローカーを確認）", "{device} is not online after {seconds} s (check Wi-Fi and broker)"),
    "workshop_flash_no_watch": ("{device}: --mqtt-url が無いのでオンライン確認はしません（workshop status で見られます）", "{device}: no --mqtt-url, so not waiting for it to come online (see workshop status)"),
    "workshop_col_participant": ("名前", "participant"),
    "workshop_col_device": ("機器", "device"),
    "workshop_col_state": ("状態", "state"),
    "workshop_col_last_seen": ("最終確認", "last seen"),
    "workshop_online": ("オンライン", "online"),
    "workshop_offline": ("オフライン", "offline"),
    "workshop_status_total": ("オンライン {online}/{total} 台（Ctrl-C で終了）", "{online} of {total} online (Ctrl-C to stop)"),
    # workshop on the LAN (machikit workshop serve / labels; the flash and status defaults)
    "workshop_serve_ready": ("講習会のサーバーが動いています。ボードの接続先（ブローカー）: {host}、ポート {mqtt_port}（暗号化なしの MQTT。持参したアクセスポイントの中だけで使います）", "The workshop server is running. Boards connect to the broker at {host}, port {mqtt_port} (plain MQTT: for the workshop's own access point only)"),
    "workshop_serve_map": ("スマホで地図を開くアドレス（同じ Wi-Fi につないで）: {url}", "Phones on the same Wi-Fi open the map at: {url}"),
    "workshop_serve_next": ("次は別の画面で: machikit workshop flash（書き込み）、machikit workshop status（だれがオンラインか）。止めるには Ctrl-C", "Next, in another window: machikit workshop flash (flashing), machikit workshop status (who is online). Ctrl-C stops the server"),
    "workshop_serve_external": ("workshop serve は内蔵ブローカーで動きます。設定に mqtt_url（町のブローカー）があるときは、そのブローカーのアドレスを machikit workshop flash --broker-host に指定してください", "workshop serve runs the embedded broker. With mqtt_url set (a town broker), give that broker's address to machikit workshop flash --broker-host instead"),
    "workshop_no_lan_address": ("このPCのLANのアドレスが分かりません。Wi-Fi につながっているか確かめて、--host にアドレス（例 192.168.10.2）を指定してください", "Cannot tell this laptop's address on the local network. Check that it is on the Wi-Fi, then give the address with --host (e.g. 192.168.10.2)"),
    "workshop_no_broker_host": ("ボードの接続先が分かりません。先に machikit workshop serve を起動するか、--broker-host にアドレスを指定してください", "No broker address for the boards. Start machikit workshop serve first, or give --broker-host"),
    "workshop_loopback_broker": ("{host} はボードから見るとボード自身のことです。講師のPCの LAN のアドレス（machikit workshop serve が表示するもの）を使ってください", "To a board, {host} means the board itself. Use the laptop's LAN address (the one machikit workshop serve prints)"),
    "workshop_no_watch_url": ("状態を見るための接続先が分かりません。先に machikit workshop serve を起動するか、--mqtt-url を指定してください", "Nothing to watch the statuses with. Start machikit workshop serve first, or give --mqtt-url"),
    "workshop_no_map_url": ("地図のアドレスが分かりません。先に machikit workshop serve を起動するか、--map-url を指定してください", "No map address. Start machikit workshop serve first, or give --map-url"),
    "workshop_labels_done": ("ラベルを印刷し直しました: {labels}（{pages}ページ、QR コード: {url}）", "Labels written again: {labels} ({pages} pages, QR codes: {url})"),
    "workshop_labels_stale": ("ラベルの QR コードは {printed} を指していますが、今の地図は {now} です。machikit workshop labels で印刷し直してください", "The labels' QR codes point to {printed}, but the map is at {now} now. Print them again with machikit workshop labels"),
    "workshop_bad_place": ("会場の位置 {value!r} が読めません。緯度,経度 で書いてください（例 37.1275,138.7590）", "Cannot read the place {value!r}: write latitude,longitude (e.g. 37.1275,138.7590)"),
    "workshop_brokerfiles_done": ("内蔵ブローカーのユーザーと権限を書きました（{folder}）。すぐに使えます", "Wrote the embedded broker's users and topic rules ({folder}); they apply at once"),
    # firewall warnings (machikit workshop serve)
    "firewall_windows": ("Windows のファイアウォールがボードとスマホの接続を止めるかもしれません。初めて起動したときの「Windows セキュリティの重要な警告」では「プライベート ネットワーク」を選んで許可します。出なかったときや拒否したときは、管理者として開いた PowerShell で次の2行を実行してください（今の Wi-Fi をプライベート ネットワークにして、2つのポートを開けます）:", "Windows Defender Firewall may block the boards and phones. At the first start, answer the Windows Security Alert with \"Private networks\" and Allow. If it did not appear or was refused, run these two lines in PowerShell opened as administrator (makes the current Wi-Fi a private network and opens the two ports):"),
    "firewall_windows_after": ("講習会が終わったら閉じます: Remove-NetFirewallRule -DisplayName '{rule}'", "Close them after the workshop: Remove-NetFirewallRule -DisplayName '{rule}'"),
    "firewall_macos": ("macOS のファイアウォールが有効です。「受信接続を許可しますか？」と聞かれたら Python に「許可」を選んでください（システム設定 → ネットワーク → ファイアウォール → オプション）", "The macOS firewall is on. When asked whether Python may accept incoming connections, choose Allow (System Settings → Network → Firewall → Options)"),
    "firewall_ufw": ("ufw（ファイアウォール）がボードとスマホの接続を止めています。次を実行してください:", "ufw (the firewall) blocks the boards and phones. Run:"),
    "firewall_firewalld": ("firewalld がボードとスマホの接続を止めています。次を実行してください:", "firewalld blocks the boards and phones. Run:"),
    # flashing boards (machikit/flash/)
    "flash_no_port": ("ポート {port} が見つかりません。USBケーブル（充電専用でないもの）を確かめてください。ESP32 を Windows で使うなら CP210x（Silicon Labs）か CH340（WCH）のドライバーを入れてください", "Port {port} not found. Check the USB cable (a data cable, not charge-only); ESP32 on Windows: install the CP210x (Silicon Labs) or CH340 (WCH) driver"),
    "flash_port_busy": ("ポート {port} は使用中です。Thonny など、ボードにつないでいる他のプログラムを閉じてください", "Port {port} is busy. Close Thonny or any other program connected to the board"),
    "flash_no_micropython": ("ボード {port} が MicroPython として応答しません。Pico W: BOOTSEL を押したままUSBをつなぎ、出てきたドライブに MicroPython 1.25 の UF2 をドラッグ＆ドロップ（ドライバー不要）。ESP32: esptool.py --port {port} write_flash -z 0x1000 ESP32_GENERIC-20250415-v1.25.0.bin", "The board on {port} does not answer as MicroPython. Pico W: hold BOOTSEL while plugging in USB and drag the MicroPython 1.25 UF2 onto the drive (no driver needed). ESP32: esptool.py --port {port} write_flash -z 0x1000 ESP32_GENERIC-20250415-v1.25.0.bin"),
    "flash_wrong_version": ("ボードの MicroPython は {found} です。{wanted} を書き込んでから、もう一度実行してください（docs/firmware.md）", "The board runs MicroPython {found}; install {wanted} first, then try again (docs/firmware.md)"),
    "flash_copy_failed": ("{port} への書き込みが途中で止まりました。ケーブルをつなぎ直して、もう一度実行してください: {detail}", "Copying to {port} stopped part-way. Reconnect the cable and try again: {detail}"),
    "flash_bundle_failed": ("ボード用ファイルを作れませんでした: {detail}", "Could not build the board's files: {detail}"),
    "flash_progress": ("書き込み中 {done}/{total}", "copying {done}/{total}"),
    "flash_done": ("{port} に書き込み、再起動しました（{app}、{town}/{name}）", "Flashed {port} and reset it ({app}, {town}/{name})"),
    "flash_waiting": ("{town}/{name} の接続を待っています（最大 {timeout} 秒）…", "Waiting for {town}/{name} to come online (up to {timeout} s)…"),
    "flash_online": ("{town}/{name} がブローカーにつながりました", "{town}/{name} is online on the broker"),
    "flash_not_online": ("{timeout} 秒待っても {town}/{name} がつながりません。Wi-Fi とブローカーの設定、mpremote repl の起動ログを確かめてください", "{town}/{name} did not come online within {timeout} s. Check the Wi-Fi and broker settings and the start log (mpremote repl)"),
    "flash_no_board": ("ボードが見つかりません。USBケーブルを確かめてください（ESP32 を Windows で使うなら CP210x か CH340 のドライバーも）。MicroPython がまだなら docs/firmware.md", "No board found. Check the USB cable (ESP32 on Windows: the CP210x or CH340 driver too); no MicroPython yet? see docs/firmware.md"),
    "flash_many_boards": ("ボードが複数あります（{ports}）。--port で選んでください", "Several boards found ({ports}); choose one with --port"),
    # grafana push/export (machikit/grafana/)
    "grafana_help_push": ("既存の Grafana にデータソース・フォルダー・ダッシュボードを入れる（何度実行しても同じ結果）", "put the data source, folder and dashboards into an existing Grafana (safe to repeat)"),
    "grafana_help_export": ("Grafana のファイル・プロビジョニング用のファイルを書く", "write the files for Grafana's file provisioning"),
    "grafana_help_url": ("Grafana のURL（例 https://grafana.town.example）", "Grafana's URL (e.g. https://grafana.town.example)"),
    "grafana_help_insecure": ("TLS 証明書を確かめない（試験用の自己署名証明書だけに）", "do not verify the TLS certificate (only for a test self-signed one)"),
    "grafana_help_db_host": ("Grafana から見たデータベースの ホスト:ポート", "the database host:port as Grafana sees it"),
    "grafana_help_db": ("Grafana が読むデータベースの名前と読み取り専用ユーザー", "the database name and read-only user Grafana reads with"),
    "grafana_help_db_sslmode": ("データベースへの TLS（既定 require: ネットワーク越しなら必須）", "TLS to the database (default require: needed over a network)"),
    "grafana_help_out": ("書き出すフォルダー", "the folder to write to"),
    "grafana_no_token": ("環境変数 GRAFANA_TOKEN にサービスアカウントのトークンを入れてください（コマンドラインには書きません: 履歴に残るため）", "Set GRAFANA_TOKEN to a service-account token (never on the command line: it would stay in the shell history)"),
    "grafana_no_db_password": ("環境変数 MACHIKIT_GRAFANA_DB_PASSWORD に読み取り専用ユーザーのパスワードを入れてください", "Set MACHIKIT_GRAFANA_DB_PASSWORD to the read-only database user's password"),
    "grafana_bad_url": ("Grafana のURLが分かりません: {url}（https://ホスト[:ポート][/パス]）", "Unknown Grafana URL: {url} (use https://host[:port][/path])"),
    "grafana_connected": ("Grafana {url} に接続しました（版 {version}、データベース {database}）", "Connected to Grafana {url} (version {version}, database {database})"),
    "grafana_folder_found": ("フォルダー「{title}」はあります（uid {uid}）", "Folder \"{title}\" exists (uid {uid})"),
    "grafana_folder_created": ("フォルダー「{title}」を作りました（uid {uid}）", "Created the folder \"{title}\" (uid {uid})"),
    "grafana_datasource_updated": ("データソース「{name}」を更新しました（uid {uid}）", "Updated the data source \"{name}\" (uid {uid})"),
    "grafana_datasource_created": ("データソース「{name}」を作りました（uid {uid}）", "Created the data source \"{name}\" (uid {uid})"),
    "grafana_dashboard_saved": ("ダッシュボード「{title}」を保存しました（uid {uid}）", "Saved the dashboard \"{title}\" (uid {uid})"),
    "grafana_push_done": ("完了: ダッシュボード {count} 枚 → {url}", "Done: {count} dashboards → {url}"),
    "grafana_bad_token": ("Grafana がトークンを受け付けません（401）。GRAFANA_TOKEN が正しいか、期限切れでないか確かめてください", "Grafana refused the token (401). Check that GRAFANA_TOKEN is right and not expired"),
    "grafana_forbidden": ("トークンに権限がありません（403）。サービスアカウントを Admin（または Editor とデータソース作成権限）にしてください: {detail}", "The token lacks permission (403). Give the service account the Admin role (or Editor plus data-source rights): {detail}"),
    "grafana_unreachable": ("Grafana {url} に接続できません。URL とポート、Grafana が動いているかを確かめてください: {detail}", "Cannot reach Grafana at {url}. Check the URL, the port and that Grafana is running: {detail}"),
    "grafana_tls_failed": ("Grafana {url} の TLS 証明書を確かめられません。町のCAをシステムに入れてください（試験だけなら --insecure）: {detail}", "Cannot verify Grafana's TLS certificate at {url}. Install the town's CA in the system (for a test only: --insecure): {detail}"),
    "grafana_conflict": ("Grafana に同じ名前の別のものがあります（409）。Grafana の画面で名前を変えるか消してください: {detail}", "Grafana already has a different item with the same name (409). Rename or delete it in Grafana: {detail}"),
    "grafana_failed": ("Grafana がエラーを返しました（{status}）: {detail}", "Grafana returned an error ({status}): {detail}"),
    "grafana_exported": ("{count} 個のファイルを {out} に書きました（Grafana へのマウントは deploy/README.md）", "Wrote {count} files to {out} (mount them into Grafana, see deploy/README.md)"),
    "grafana_export_failed": ("{out} に書けません: {detail}", "Cannot write to {out}: {detail}"),
    # dashboards (dashboards/)
    "dash_folder": ("まちキット", "machikit"),
    "dash_fleet": ("車両", "Fleet"),
    "dash_fleet_about": ("バス・ごみ収集車・屋台の運行状況: 運行中の台数、最終受信、位置の受信数、GPSの品質、地図。", "Buses, garbage trucks and festival stalls: how many run now, last seen, positions received, GPS quality, a map."),
    "dash_snow": ("積雪（参考値）", "Snow (reference values)"),
    "dash_snow_about": ("積雪計の参考値です（公式の観測値ではありません）。降雪量の棒は1時間の中央値が前の1時間より2 cmを超えて増えたときだけ数えます。", "Reference values from the town's snow gauges (not official observations). An hourly snowfall bar counts only when the hour's median depth rose by more than 2 cm."),
    "dash_printer": ("プリンターの取り忘れ", "Printer buzzer"),
    "dash_printer_about": ("取り忘れブザー: 1日の警報数、用紙が残っていた時間、時間帯（日本時間）。", "Printer buzzers: alarms per day, how long paper lay in the tray, hour of day (JST)."),
    "dash_health": ("機器の状態", "Device health"),
    "dash_health_about": ("全機器の最終受信、送信待ち、削除件数、再起動、電波強度、受け付けなかったメッセージ。", "Every device: last seen, outbox, dropped messages, reboots, signal, quarantined messages."),
    # --- Raspberry Pi jobs (pi/) ---
    # pi: gps reading and filtering
    "gps_check_usage": ("使い方: machikit pi gps-check NMEAファイル…", "Usage: machikit pi gps-check NMEA_FILE…"),
    "gps_check_unreadable": ("GPSログ {path} を読めません: {detail}", "Cannot read the GPS log {path}: {detail}"),
    "gps_col_file": ("ファイル", "file"),
    "gps_col_lines": ("行数", "lines"),
    "gps_col_sentences": ("NMEA文", "sentences"),
    "gps_col_bad_checksum": ("チェックサム誤り", "bad checksum"),
    "gps_col_garbage": ("読めない行", "garbage"),
    "gps_col_fixes": ("測位", "fixes"),
    "gps_col_accepted": ("採用", "accepted"),
    "gps_col_published": ("送信", "published"),
    "gps_col_rollover_fixed": ("週番号補正", "rollover fixed"),
    "gps_col_rejected": ("除外（理由別）", "rejected by reason"),
    "gps_reject_no_time": ("時刻が不明", "no time from the receiver yet"),
    "gps_reject_no_position": ("位置が不明", "no position"),
    "gps_reject_invalid": ("受信機が無効と報告", "the receiver marks it invalid"),
    "gps_reject_few_satellites": ("衛星が少ない", "too few satellites"),
    "gps_reject_high_hdop": ("精度が低い（HDOPが大きい）", "poor precision (high HDOP)"),
    "gps_reject_too_fast": ("速度が速すぎる", "impossibly fast"),
    "gps_reject_jump": ("前の位置から飛びすぎ", "jumped too far from the last position"),
    "gps_reject_time_backwards": ("時刻が戻った", "time went backwards"),
    # pi: outbox and MQTT link
    "pi_outbox_full": (
        "送信待ちが上限 {capacity} 件に達したため、古いものから削除しています（累計 {dropped} 件）。",
        "The outbox is full ({capacity} messages): deleting the oldest unsent (total {dropped}).",
    ),
    "pi_link_online": (
        "{device}: MQTTブローカー {host}:{port} に接続しました（送信待ち {buffered} 件）。",
        "{device}: connected to the MQTT broker {host}:{port} ({buffered} waiting).",
    ),
    "pi_link_offline": (
        "{device}: MQTTブローカーに接続できません。データは保存して、つながったら送ります: {detail}",
        "{device}: cannot reach the MQTT broker; data is kept and sent when it is back: {detail}",
    ),
    "pi_bad_command": (
        "規約に合わない遠隔設定を無視しました: {detail}",
        "Ignored remote settings that break the contract: {detail}",
    ),
    "pi_command_failed": (
        "遠隔設定の処理でエラー（接続は続けます）",
        "Error while applying remote settings (the link keeps running)",
    ),
    "pi_backlog_sent": (
        "たまっていた {count} 件をすべて送りました。",
        "Sent the whole backlog ({count} messages).",
    ),
    # pi: gpiozero sensors, config files and systemd services
    "pi_unknown_job": ("知らないジョブです: {job}（{jobs} のどれか）", "Unknown job: {job} (one of {jobs})"),
    "pi_config_missing": ("設定ファイル {path} がありません。sudo machikit pi install {job} で例を作れます。", "The config file {path} does not exist; sudo machikit pi install {job} writes an example."),
    "pi_config_syntax": ("設定ファイル {path} の書き方が違います: {detail}", "Syntax error in the config file {path}: {detail}"),
    "pi_config_unknown_section": ("{path}: [{section}] は知らない節です（使えるのは {sections}）", "{path}: unknown section [{section}] (use {sections})"),
    "pi_config_unknown_key": ("{path}: [{section}] の {item} は知らない項目です（書き間違い？）", "{path}: unknown key {item} in [{section}] (a typo?)"),
    "pi_config_missing_key": ("{path}: [{section}] に {item} がありません（必須）", "{path}: [{section}] {item} is missing (required)"),
    "pi_config_empty_key": ("{path}: [{section}] の {item} が空です。値を書いてください", "{path}: [{section}] {item} is empty; please fill it in"),
    "pi_config_wrong_type": ("{path}: [{section}] の {item} は{kind_ja}で書いてください（今は {got}）", "{path}: [{section}] {item} must be {kind_en} (it is {got})"),
    "pi_config_bad_value": ("{path}: [{section}] の {item} = {got} は使えません（{allowed}）", "{path}: [{section}] {item} = {got} is not allowed ({allowed})"),
    "pi_unit_written": ("サービス定義を書きました: {path}", "Wrote the service unit: {path}"),
    "pi_config_written": ("設定の例を書きました。空欄を埋めてください: {path}", "Wrote an example config; fill in the empty values: {path}"),
    "pi_config_kept": ("今の設定ファイルをそのまま使います: {path}", "Kept the existing config file: {path}"),
    "pi_run_these": ("次のコマンドで有効にしてください:", "Enable the service with:"),
    "pi_service_started": ("{unit} を有効にして起動しました。ログ: journalctl -u {unit} -f", "Enabled and started {unit}. Logs: journalctl -u {unit} -f"),
    "pi_service_removed": ("{unit} を止めて削除しました。設定 {config} とデータ {state} は残してあります。", "Stopped and removed {unit}. The config {config} and the data in {state} are kept."),
    "pi_service_absent": ("{unit} は入っていません。", "{unit} is not installed."),
    "pi_user_created": ("サービス用のユーザー {user} を作りました。", "Created the service user {user}."),
    "pi_user_missing": ("ユーザー {user} がありません。作るには: {command}", "The user {user} does not exist; create it with: {command}"),
    "pi_group_missing": ("グループ {group} がありません（Raspberry Pi OS 以外？）。GPIO やシリアルが使えないかもしれません。", "There is no group {group} (not Raspberry Pi OS?); GPIO or serial access may fail."),
    "pi_need_root": ("管理者権限が必要です。sudo を付けて実行してください。", "This needs root: run it with sudo."),
    "pi_systemctl_failed": ("systemctl {command} が失敗しました: {detail}", "systemctl {command} failed: {detail}"),
    "pi_job_started": ("{job} を開始しました: {detail}", "Started {job}: {detail}"),
    "pi_job_stopping": ("{job} を停止します（{reason}）", "Stopping {job} ({reason})"),
    "pi_job_event": ("{job}: {event} {detail}", "{job}: {event} {detail}"),
    "pi_snow_no_thermometer": ("温度計 DS18B20 が見つかりません: {path}（温度補正なしでは積雪を出しません）", "No DS18B20 thermometer at {path} (no depth without temperature compensation)"),
    "pi_snow_calibrated": ("取り付け高さを {mount} cm にしました（{path} に保存）", "Mount height set to {mount} cm (saved in {path})"),
    "pi_snow_calibration_failed": ("校正できませんでした（エコーが足りない・温度がない）。高さは {mount} cm のままです。", "Calibration failed (too few echoes or no temperature); the height stays {mount} cm."),
    "pi_snow_state_unreadable": ("状態ファイル {path} を読めません。設定の高さを使います: {detail}", "Cannot read the state file {path}; using the configured height: {detail}"),
    # pi: tracker job
    "pi_help_run": ("ジョブを動かす（systemd が使います）", "run a job (what systemd runs)"),
    "pi_help_config": ("設定ファイル（既定 /etc/machikit/<job>.toml）",
                       "config file (default /etc/machikit/<job>.toml)"),
    "pi_help_install": ("ジョブを systemd のサービスとして入れる", "install a job as a systemd service"),
    "pi_help_uninstall": ("サービスを外す（設定と未送信データは残す）",
                          "remove the service (config and unsent data stay)"),
    "pi_help_root": ("この場所の下に書く（試験用）", "write under this folder (for testing)"),
    "pi_help_user": ("サービスを動かすユーザー", "the user the service runs as"),
    "pi_help_no_start": ("入れるだけで起動しない", "install only, do not start"),
    "pi_help_gps_check": ("記録した NMEA ログで何点送られるか調べる",
                          "what a recorded NMEA log would give"),
    "pi_help_gps_replay": ("NMEA ログを仮の GPS（pty）として流す",
                           "play an NMEA log as a pretend receiver (pty)"),
    "pi_replay_ready": ("GPS の再生中: {path}（設定の [gps] port をこのパスに）",
                        "Replaying GPS on {path} (set [gps] port to this path)"),
    "gps_port_open": ("GPS 受信機を開きました: {port}（{baud} bps）",
                      "GPS receiver open: {port} ({baud} bps)"),
    "gps_port_missing": ("GPS 受信機 {port} が見つかりません。USB ケーブルと設定の port を確認してください: {detail}",
                         "GPS receiver {port} not found: check the USB cable and [gps] port: {detail}"),
    "gps_port_lost": ("GPS 受信機 {port} との接続が切れました。つなぎ直します: {detail}",
                      "Lost the GPS receiver {port}, reopening: {detail}"),
    "gps_job_start": ("GPS 追跡を開始: {device}（受信機 {port}、送信待ちの保存先 {outbox}）",
                      "GPS tracker started: {device} (receiver {port}, outbox {outbox})"),
    "gps_job_stop": ("GPS 追跡を停止: 位置 {fixes} 件のうち {published} 件を送信予定にしました",
                     "GPS tracker stopped: {published} of {fixes} fixes queued to send"),
    "tracker_status": ("送信待ち {buffered} 件、送信予定にした位置 {published} 件、{online}",
                       "{buffered} waiting, {published} positions queued, {online}"),
    "tracker_online": ("オンライン", "online"),
    "tracker_offline": ("オフライン（データは保存しています）", "offline (data is kept)"),
    # Python 3.13 run of the client tests (machikit dev py313)
    "py313_no_python": (
        "テスト用の Debian 13 環境に Python がありません（{path}）。machikit dev services up を実行してください。",
        "The test bed root has no Python ({path}). Run: machikit dev services up",
    ),
    "py313_no_checkout": (
        "テストのあるチェックアウトから実行してください（{path} に tests/ がありません）。",
        "Run this from a checkout with its tests ({path} has no tests/).",
    ),
    "py313_no_control": (
        "Python 3.13 での実行中はテスト用サービスを止めたり起動したりできません（ホスト側のテストで行います）。",
        "The Python 3.13 run cannot stop or start the test services (the host's test run does that).",
    ),
    "db_disk_full": (
        "データベースのディスクがいっぱいです。空きができるまでメッセージの受信を確定しません"
        "（ブローカーが預かり、失われません。{attempt}回目、{delay:.1f}秒後に再試行）: {detail}",
        "The database's disk is full. Messages are not acknowledged until space is freed"
        " (the broker keeps them; nothing is lost. Attempt {attempt}, retrying in {delay:.1f} s): {detail}",
    ),
    # backup and restore (collector/backup.py, collector/restore.py), private files
    "private_tightened": (
        "{path} の権限を {old} から {new} にしました（所有者だけが読めるように）",
        "Tightened {path} from mode {old} to {new} (owner only)",
    ),
    "backup_done": ("バックアップを作りました: {path}（{size}）", "Backup written: {path} ({size})"),
    "backup_rows": ("表ごとの行数", "Rows per table"),
    "backup_no_database": (
        "データベース {path} がまだありません。バックアップするものがありません。",
        "The database {path} does not exist yet: nothing to back up.",
    ),
    "backup_not_found": ("バックアップファイル {file} がありません。", "Backup file {file} not found."),
    "backup_bad_file": (
        "{file} は壊れているか、まちキットのバックアップではありません: {detail}",
        "{file} is damaged or not a machikit backup: {detail}",
    ),
    "backup_wrong_kind": (
        "{file} は {engine} 用のバックアップではありません。設定のデータベースと同じ種類のバックアップを指定してください。",
        "{file} is not a backup for {engine}. Use a backup made from the same kind of database as the configured one.",
    ),
    "restore_done": ("{file} を {target} に復元しました。", "Restored {file} into {target}."),
    "restore_kept_old": (
        "元のデータベースは {path} に残しました。",
        "The previous database is kept as {path}.",
    ),
    "restore_in_use": (
        "{path} は使用中です（machikit serve などが開いています）。止めてから復元してください。",
        "{path} is in use (machikit serve or another program has it open). Stop it, then restore.",
    ),
    "restore_not_empty": (
        "{target} にはすでにデータがあります（{rows} 行）。置き換えるには --force を付けてください（元のファイルは残します）。",
        "{target} already holds data ({rows} rows). Add --force to replace it (the old file is kept).",
    ),
    "restore_pg_not_empty": (
        "データベース {target} は空ではありません（表が {tables} 個あります）。空のデータベースを作り、そこに復元してください（operations.md「バックアップと復元」）。",
        "The database {target} is not empty ({tables} tables). Create an empty database and restore into it (operations.md, Backup and restore).",
    ),
    "restore_needs_superuser": (
        "TimescaleDB の復元にはデータベースの管理者（postgres など）の権限が必要です。管理者の接続先を MACHIKIT_DATABASE_URL に指定して実行してください: {detail}",
        "Restoring TimescaleDB needs a database superuser (such as postgres). Run it with the superuser's address in MACHIKIT_DATABASE_URL: {detail}",
    ),
    "pg_tool_missing": (
        "{tool} が見つかりません。サーバーと同じ版の PostgreSQL クライアント（例: postgresql-client-17）を入れるか、--pg-bin でそのフォルダーを指定してください（環境変数 MACHIKIT_PG_BIN でも指定できます）。",
        "{tool} not found. Install the PostgreSQL client of the server's version (e.g. postgresql-client-17), or name its folder with --pg-bin (or MACHIKIT_PG_BIN).",
    ),
    "pg_tool_failed": ("{tool} が失敗しました: {detail}", "{tool} failed: {detail}"),
    "api_too_large": (
        "リクエストが大きすぎます。",
        "Request too large.",
    ),
    "api_too_many_streams": (
        "この接続元からのライブ接続が多すぎます。少し待ってからもう一度。",
        "Too many live connections from this address. Please try again shortly.",
    ),
    # machikit flash --ca: the CA a board checks its broker's certificate with
    "flash_no_ca": (
        "注意: --ca がないので、ボードはブローカーの証明書を確かめません（暗号化だけ）。町の CA か、公的な証明書ならそれを発行したルート CA のファイルを --ca で渡してください（docs/operations.md）",
        "Note: no --ca, so the board will not check the broker's certificate (encryption only). Pass the town's CA, or for a public certificate the root CA that issued it, with --ca (docs/operations.md)",
    ),
    "flash_bad_ca": (
        "--ca の証明書はボードで使えません: {detail}",
        "The --ca certificate cannot be used on a board: {detail}",
    ),
    # the soak (machikit bench soak)
    "bench_soak_needs_testbed": (
        "bench soak はテスト環境の Mosquitto を専用に起動します。root で machikit dev services up の後に実行してください。",
        "bench soak starts its own Mosquitto from the test bed: run it as root after machikit dev services up.",
    ),
    "bench_soak_run": (
        "連続運転 {minutes:.0f} 分: 車両 {vehicles} 台、センサー {sensors} 台、閲覧 {viewers} 人…",
        "Soak for {minutes:.0f} min: {vehicles} vehicles, {sensors} sensors, {viewers} viewers…",
    ),
    "bench_soak_broker_restart": ("{at:.0f} 秒: ブローカーを再起動します", "{at:.0f} s: restarting the broker"),
    "bench_soak_collector_kill": (
        "{at:.0f} 秒: 収集プロセスを強制終了し、起動し直します",
        "{at:.0f} s: killing the collector (SIGKILL) and starting it again",
    ),
    "bench_soak_draining": ("送信を終えました。全件の保存を待っています…", "Sending done; waiting until everything is stored…"),
    "bench_soak_title": (
        "連続運転 {minutes:.0f} 分（車両 {vehicles} 台が {vehicle_every:g} 秒ごと、センサー {sensors} 台が {sensor_every:g} 秒ごと、閲覧 {viewers} 人、うち {pollers} 人が {poll_every:g} 秒ごとに一覧を取得）",
        "Soak of {minutes:.0f} min ({vehicles} vehicles every {vehicle_every:g} s, {sensors} sensors every {sensor_every:g} s, {viewers} viewers, {pollers} of them polling every {poll_every:g} s)",
    ),
    "bench_soak_machine": (
        "CPU {cpus} 個、負荷平均（1/5/15分） 開始 {start}、終了 {end}",
        "{cpus} CPUs, load average (1/5/15 min) at start {start}, at end {end}",
    ),
    "bench_soak_ok": (
        "欠損 0、重複 0: ブローカーが受け取った全件が1回ずつ保存されました。",
        "Loss 0, duplicates 0: every message the broker acknowledged is stored exactly once.",
    ),
    "bench_soak_loss": (
        "失敗: 欠損 {loss} 件、重複 {duplicates} 件、隔離 {quarantined} 件。",
        "FAILED: loss {loss}, duplicates {duplicates}, quarantined {quarantined}.",
    ),
    "bench_soak_live": (
        "ライブ配信: {viewers} 人中 {connected} 人が接続、切断 {dropped}（計測用の1人の切断 {probe_drops}）。一覧の取得 {polls} 回。サーバーエラー（5xx） {errors} 件。",
        "Live stream: {connected} of {viewers} viewers connected, {dropped} dropped (the measuring viewer: {probe_drops}). Vehicle list polls: {polls}. Server errors (5xx): {errors}.",
    ),
    "bench_soak_notes": (
        "最初 = 最初の1分（障害の前）。送信→受信はデータベースの全行から、送信→保存は収集プロセスの毎秒の統計から（p99 は区間の上限値）、送信→地図は計測用の閲覧者1人から。",
        "first = the first minute (before any fault). publish→received: every row in the database; publish→stored: the collector's per-second stats (p99 = bucket bound); publish→live: one measuring viewer.",
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
