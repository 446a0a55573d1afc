BEGIN TRANSACTION;
CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
                action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL
            );
INSERT INTO "audit" VALUES(1,'2026-12-01T08:36:42.832+00:00','U1','request.accepted','rq-47d010de743d','{"channel": "C1", "numbers": ["+2348031234561", "+2348031234562", "+2348031234560"], "voice": "yoruba/female", "workflow": "6dc880fe-a21f-4ddb-af98-b38235711a1b"}');
INSERT INTO "audit" VALUES(2,'2026-12-01T08:36:42.842+00:00','provider','request.placed','rq-47d010de743d','{"batch_id": "af229225-6bee-42d5-a169-1842bb80ee69"}');
INSERT INTO "audit" VALUES(3,'2026-12-01T08:36:42.896+00:00','provider','request.completed','rq-47d010de743d','{"results": {"+2348031234560": "TIMEOUT", "+2348031234561": "COMPLETED", "+2348031234562": "COMPLETED"}, "source": "intron", "status": "COMPLETED"}');
INSERT INTO "audit" VALUES(4,'2026-12-01T08:36:43.857+00:00','U1','request.accepted','rq-c80d2cfc7757','{"channel": "C1", "numbers": ["+2348031234563"], "voice": null, "workflow": "6dc880fe-a21f-4ddb-af98-b38235711a1b"}');
INSERT INTO "audit" VALUES(5,'2026-12-01T08:36:43.864+00:00','provider','request.failed','rq-c80d2cfc7757','{"error": "Intron refused our API key, so nobody was called. An admin should check INTRON_API_KEY."}');
INSERT INTO "audit" VALUES(6,'2026-12-01T08:36:44.882+00:00','U1','request.accepted','rq-31b1613d8ee0','{"channel": "C2", "numbers": ["+2348031234564"], "voice": null, "workflow": "f7797efb-b021-4d89-a7a8-e3cbbb78d3a2"}');
INSERT INTO "audit" VALUES(7,'2026-12-01T08:36:44.889+00:00','provider','request.placed','rq-31b1613d8ee0','{"batch_id": "2d51add5-6159-4ebd-8457-5990cf82e0ce"}');
INSERT INTO "audit" VALUES(8,'2026-12-01T08:36:45.903+00:00','U1','request.accepted','rq-c6cbb9ae0a13','{"channel": "C1", "numbers": ["+2348031234565"], "voice": null, "workflow": "f7797efb-b021-4d89-a7a8-e3cbbb78d3a2"}');
INSERT INTO "audit" VALUES(9,'2026-12-01T08:36:45.910+00:00','provider','request.unknown','rq-c6cbb9ae0a13','{"error": "Intron may or may not have placed these calls (we got no clear answer). They were not resent, so nobody is called twice: check the results or the workflow''s calls before sending again."}');
INSERT INTO "audit" VALUES(10,'2026-12-01T08:36:50.396+00:00','U1','request.accepted','rq-955183b9327e','{"channel": "C1", "numbers": ["+2348031234566", "+2348031234567"], "voice": null, "workflow": "6dc880fe-a21f-4ddb-af98-b38235711a1b"}');
INSERT INTO "audit" VALUES(11,'2026-12-01T08:36:50.397+00:00','U2','request.accepted','rq-c4d2ff3802fa','{"channel": "C1", "numbers": ["+2348031234568"], "voice": "igbo/female", "workflow": "f7797efb-b021-4d89-a7a8-e3cbbb78d3a2"}');
CREATE TABLE callbacks (
                id INTEGER PRIMARY KEY AUTOINCREMENT, received_at TEXT NOT NULL,
                batch_id TEXT, request_id TEXT, outcome TEXT NOT NULL,
                source TEXT NOT NULL DEFAULT 'intron', body TEXT NOT NULL
            );
INSERT INTO "callbacks" VALUES(1,'2026-12-01T08:36:42.895+00:00','af229225-6bee-42d5-a169-1842bb80ee69','rq-47d010de743d','applied','intron','{"request_id":"af229225-6bee-42d5-a169-1842bb80ee69","status":"COMPLETED","integrator_id":"00000000-5a4d-b0c5-0000-000000000000","stats":{"total_calls":3,"completed_calls":2,"timeout_calls":1,"replied_calls":2,"replied_option_one_count":1,"replied_option_two_count":1,"avg_duration":22.5,"success_rate":66.7},"request_calls":[{"id":"c137c07b-be1d-416a-93b1-2008963840cd","status":"COMPLETED","phone_number":"+2348031234561","user_tag_identifiers":{"robocall_request_id":"rq-47d010de743d","robocall_recipient":"1"},"call_result_duration":22,"call_result_options_selected":"1","created_at":"2026-12-01T08:36:42.839337"},{"id":"576c8a24-b490-45f5-baa8-51a204801364","status":"COMPLETED","phone_number":"+2348031234562","user_tag_identifiers":{"robocall_request_id":"rq-47d010de743d","robocall_recipient":"2"},"call_result_duration":23,"call_result_options_selected":"2","created_at":"2026-12-01T08:36:42.839362"},{"id":"9b942b79-8675-4c30-9ad5-32bfd48ca1a3","status":"TIMEOUT","phone_number":"+2348031234560","user_tag_identifiers":{"robocall_request_id":"rq-47d010de743d","robocall_recipient":"3"},"call_result_duration":0,"call_result_options_selected":null,"created_at":"2026-12-01T08:36:42.839379"}]}');
CREATE TABLE calls (
                request_id TEXT NOT NULL REFERENCES requests(id), position INTEGER NOT NULL,
                phone_number TEXT NOT NULL, variables TEXT NOT NULL,
                provider_call_id TEXT, status TEXT, duration REAL, key_pressed TEXT,
                PRIMARY KEY (request_id, position)
            );
INSERT INTO "calls" VALUES('rq-47d010de743d',1,'+2348031234561','{"name": "Ada", "date": "12 May"}','c137c07b-be1d-416a-93b1-2008963840cd','COMPLETED',22.0,'1');
INSERT INTO "calls" VALUES('rq-47d010de743d',2,'+2348031234562','{"name": "Bola", "date": "12 May"}','576c8a24-b490-45f5-baa8-51a204801364','COMPLETED',23.0,'2');
INSERT INTO "calls" VALUES('rq-47d010de743d',3,'+2348031234560','{"name": "Chidi", "date": "13 May"}','9b942b79-8675-4c30-9ad5-32bfd48ca1a3','TIMEOUT',0.0,NULL);
INSERT INTO "calls" VALUES('rq-c80d2cfc7757',1,'+2348031234563','{"name": "Dayo", "date": "Friday"}',NULL,NULL,NULL,NULL);
INSERT INTO "calls" VALUES('rq-31b1613d8ee0',1,'+2348031234564','{"name": "Emeka"}',NULL,NULL,NULL,NULL);
INSERT INTO "calls" VALUES('rq-c6cbb9ae0a13',1,'+2348031234565','{"name": "Funmi"}',NULL,NULL,NULL,NULL);
INSERT INTO "calls" VALUES('rq-955183b9327e',1,'+2348031234566','{"name": "Gbenga", "date": "Monday"}',NULL,NULL,NULL,NULL);
INSERT INTO "calls" VALUES('rq-955183b9327e',2,'+2348031234567','{"name": "Halima", "date": "Tuesday"}',NULL,NULL,NULL,NULL);
INSERT INTO "calls" VALUES('rq-c4d2ff3802fa',1,'+2348031234568','{"name": "Ifeoma"}',NULL,NULL,NULL,NULL);
CREATE TABLE home_viewers (
                user_id TEXT PRIMARY KEY, opened_at TEXT NOT NULL, can_manage INTEGER NOT NULL
            );
INSERT INTO "home_viewers" VALUES('U1','2026-12-01T08:36:46.908+00:00',1);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('callback_token','XMp07cddAr_bE8nMHLCrgCWwlxW_KM4M');
INSERT INTO "meta" VALUES('workflows_fetched_at','2026-12-01T08:36:42.797+00:00');
CREATE TABLE outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
                channel TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT,
                created_at TEXT NOT NULL, failed TEXT
            );
INSERT INTO "outbox" VALUES(10,'rq-c6cbb9ae0a13','C1','parent',NULL,'2026-12-01T08:36:45.904+00:00',NULL);
INSERT INTO "outbox" VALUES(11,'rq-c6cbb9ae0a13','C1','reply','{"text": ":grey_question: Intron may or may not have placed these calls (we got no clear answer). They were not resent, so nobody is called twice: check the results or the workflow''s calls before sending again.\nCheck with `/robocall status rq-c6cbb9ae0a13`.", "blocks": [{"text": {"text": ":grey_question: Intron may or may not have placed these calls (we got no clear answer). They were not resent, so nobody is called twice: check the results or the workflow''s calls before sending again.\nCheck with `/robocall status rq-c6cbb9ae0a13`.", "type": "mrkdwn"}, "type": "section"}]}','2026-12-01T08:36:45.911+00:00',NULL);
CREATE TABLE requests (
                id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                status TEXT NOT NULL, workflow_id TEXT NOT NULL, workflow_name TEXT NOT NULL,
                voice TEXT, requested_by TEXT NOT NULL, channel TEXT, source TEXT NOT NULL,
                idempotency_key TEXT UNIQUE, recipient_count INTEGER NOT NULL,
                batch_id TEXT UNIQUE, error TEXT, stats TEXT, completed_at TEXT,
                call_request TEXT NOT NULL
            );
INSERT INTO "requests" VALUES('rq-47d010de743d','2026-12-01T08:36:42.831+00:00','2026-12-01T08:36:42.895+00:00','completed','6dc880fe-a21f-4ddb-af98-b38235711a1b','Reminder','yoruba/female','U1','C1','slack:modal','view:VSEND1',3,'af229225-6bee-42d5-a169-1842bb80ee69',NULL,'{"total_calls":3,"completed_calls":2,"timeout_calls":1,"replied_calls":2,"replied_option_one_count":1,"replied_option_two_count":1,"avg_duration":22.5,"success_rate":66.7}','2026-12-01T08:36:42.895+00:00','{"workflow_id": "6dc880fe-a21f-4ddb-af98-b38235711a1b", "workflow_params": [{"phone_number": "+2348031234561", "workflow_variables": {"name": "Ada", "date": "12 May"}, "user_tag_identifiers": {"robocall_request_id": "rq-47d010de743d", "robocall_recipient": "1"}}, {"phone_number": "+2348031234562", "workflow_variables": {"name": "Bola", "date": "12 May"}, "user_tag_identifiers": {"robocall_request_id": "rq-47d010de743d", "robocall_recipient": "2"}}, {"phone_number": "+2348031234560", "workflow_variables": {"name": "Chidi", "date": "13 May"}, "user_tag_identifiers": {"robocall_request_id": "rq-47d010de743d", "robocall_recipient": "3"}}], "tts_voice_accent": "yoruba", "tts_voice_gender": "female"}');
INSERT INTO "requests" VALUES('rq-c80d2cfc7757','2026-12-01T08:36:43.856+00:00','2026-12-01T08:36:43.864+00:00','failed','6dc880fe-a21f-4ddb-af98-b38235711a1b','Reminder',NULL,'U1','C1','slack:/robocall call','command:17000000000002.1700000000.df863c6a829e100617ac930128a37f01',1,NULL,'Intron refused our API key, so nobody was called. An admin should check INTRON_API_KEY.',NULL,NULL,'{"workflow_id": "6dc880fe-a21f-4ddb-af98-b38235711a1b", "workflow_params": [{"phone_number": "+2348031234563", "workflow_variables": {"name": "Dayo", "date": "Friday"}, "user_tag_identifiers": {"robocall_request_id": "rq-c80d2cfc7757", "robocall_recipient": "1"}}]}');
INSERT INTO "requests" VALUES('rq-31b1613d8ee0','2026-12-01T08:36:44.881+00:00','2026-12-01T08:36:44.889+00:00','placed','f7797efb-b021-4d89-a7a8-e3cbbb78d3a2','Alert',NULL,'U1','C2','slack:/robocall call','command:17000000000003.1700000000.d2165a05d24f8a0a40115e91bddfa2ec',1,'2d51add5-6159-4ebd-8457-5990cf82e0ce',NULL,NULL,NULL,'{"workflow_id": "f7797efb-b021-4d89-a7a8-e3cbbb78d3a2", "workflow_params": [{"phone_number": "+2348031234564", "workflow_variables": {"name": "Emeka"}, "user_tag_identifiers": {"robocall_request_id": "rq-31b1613d8ee0", "robocall_recipient": "1"}}]}');
INSERT INTO "requests" VALUES('rq-c6cbb9ae0a13','2026-12-01T08:36:45.899+00:00','2026-12-01T08:36:45.910+00:00','unknown','f7797efb-b021-4d89-a7a8-e3cbbb78d3a2','Alert',NULL,'U1','C1','slack:/robocall call','command:17000000000004.1700000000.40873a0456251ee6ff3ec7d337ed1abb',1,NULL,'Intron may or may not have placed these calls (we got no clear answer). They were not resent, so nobody is called twice: check the results or the workflow''s calls before sending again.',NULL,NULL,'{"workflow_id": "f7797efb-b021-4d89-a7a8-e3cbbb78d3a2", "workflow_params": [{"phone_number": "+2348031234565", "workflow_variables": {"name": "Funmi"}, "user_tag_identifiers": {"robocall_request_id": "rq-c6cbb9ae0a13", "robocall_recipient": "1"}}]}');
INSERT INTO "requests" VALUES('rq-955183b9327e','2026-12-01T08:36:50.395+00:00','2026-12-01T08:36:50.395+00:00','accepted','6dc880fe-a21f-4ddb-af98-b38235711a1b','Reminder',NULL,'U1','C1','slack:/robocall call','command:fixture-accepted',2,NULL,NULL,NULL,NULL,'{"workflow_id": "6dc880fe-a21f-4ddb-af98-b38235711a1b", "workflow_params": [{"phone_number": "+2348031234566", "workflow_variables": {"name": "Gbenga", "date": "Monday"}, "user_tag_identifiers": {"robocall_request_id": "rq-955183b9327e", "robocall_recipient": "1"}}, {"phone_number": "+2348031234567", "workflow_variables": {"name": "Halima", "date": "Tuesday"}, "user_tag_identifiers": {"robocall_request_id": "rq-955183b9327e", "robocall_recipient": "2"}}]}');
INSERT INTO "requests" VALUES('rq-c4d2ff3802fa','2026-12-01T08:36:50.397+00:00','2026-12-01T08:36:50.398+00:00','sending','f7797efb-b021-4d89-a7a8-e3cbbb78d3a2','Alert','igbo/female','U2','C1','slack:modal','view:VFIXTURESENDING',1,NULL,NULL,NULL,NULL,'{"workflow_id": "f7797efb-b021-4d89-a7a8-e3cbbb78d3a2", "workflow_params": [{"phone_number": "+2348031234568", "workflow_variables": {"name": "Ifeoma"}, "user_tag_identifiers": {"robocall_request_id": "rq-c4d2ff3802fa", "robocall_recipient": "1"}}], "tts_voice_accent": "igbo", "tts_voice_gender": "female"}');
CREATE TABLE seen_slack_events (
                event_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL
            );
INSERT INTO "seen_slack_events" VALUES('EvV1HOME0001','2026-12-01T08:36:42.805+00:00');
CREATE TABLE slack_messages (
                request_id TEXT PRIMARY KEY REFERENCES requests(id), channel TEXT NOT NULL,
                ts TEXT, results_queued INTEGER NOT NULL DEFAULT 0
            );
INSERT INTO "slack_messages" VALUES('rq-47d010de743d','C1','1700000000.000100',1);
INSERT INTO "slack_messages" VALUES('rq-c80d2cfc7757','C1','1700000000.000500',0);
INSERT INTO "slack_messages" VALUES('rq-31b1613d8ee0','C2','1700000000.000800',0);
INSERT INTO "slack_messages" VALUES('rq-c6cbb9ae0a13','C1',NULL,0);
CREATE TABLE workflows (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, data TEXT NOT NULL,
                fetched_at TEXT NOT NULL
            );
INSERT INTO "workflows" VALUES('6dc880fe-a21f-4ddb-af98-b38235711a1b','Reminder','{"id":"6dc880fe-a21f-4ddb-af98-b38235711a1b","name":"Reminder","description":null,"workflow_type":"ROBOCALL","message":"Hello [name], see you on [date].","include_reply":true,"response_options":{"1":"Confirm","2":"Cancel"},"call_back_url":"http://127.0.0.1:38161/callbacks/intron/XMp07cddAr_bE8nMHLCrgCWwlxW_KM4M","created_at":"2026-12-01T08:36:42.790108","updated_at":"2026-12-01T08:36:42.790108"}','2026-12-01T08:36:42.797+00:00');
INSERT INTO "workflows" VALUES('f7797efb-b021-4d89-a7a8-e3cbbb78d3a2','Alert','{"id":"f7797efb-b021-4d89-a7a8-e3cbbb78d3a2","name":"Alert","description":null,"workflow_type":"ROBOCALL","message":"Alert for [name]","include_reply":false,"response_options":null,"call_back_url":"http://127.0.0.1:38161/callbacks/intron/XMp07cddAr_bE8nMHLCrgCWwlxW_KM4M","created_at":"2026-12-01T08:36:42.793509","updated_at":"2026-12-01T08:36:42.793509"}','2026-12-01T08:36:42.797+00:00');
CREATE INDEX requests_status ON requests (status);
CREATE INDEX requests_created ON requests (created_at);
CREATE INDEX requests_workflow ON requests (workflow_id, created_at);
CREATE INDEX outbox_pending ON outbox (channel, id)
                WHERE failed IS NULL;
CREATE INDEX outbox_request ON outbox (request_id, kind)
                WHERE failed IS NULL;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('audit',11);
INSERT INTO "sqlite_sequence" VALUES('outbox',11);
INSERT INTO "sqlite_sequence" VALUES('callbacks',1);
COMMIT;
