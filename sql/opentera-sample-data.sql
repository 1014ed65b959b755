-- A little sample data for the embedded default (`npm start`), so that UPDATE and DELETE have rows
-- to work on: one site with a project, users, a device, a participant, a service with its session
-- and test types, a session with an asset and a test, and a test invitation. Secrets are fake.
-- Loaded once, right after sql/opentera-schema.sql, before tera-cdc's slot exists: these rows are
-- not streamed; changes made afterwards are.

INSERT INTO t_devices_types (device_type_name, device_type_key) VALUES
    ('Capteur', 'capteur'), ('Vidéoconférence', 'videoconference'), ('Bureau actif', 'bureau'), ('Robot', 'robot');
INSERT INTO t_devices_subtypes (id_device_type, device_subtype_name) VALUES (4, 'Beam');

INSERT INTO t_server_settings (server_settings_name, server_settings_value) VALUES
    ('ServerUUID', '2d7b2a44-0f5b-4c2e-9a57-8f2f0e3c1a10'),
    ('ServerVersions', '{"version_string": "1.3.0"}'),
    -- OpenTera signs its tokens with these; the opentera preset never publishes their values.
    ('TokenEncryptionKey', 'demo-token-key-not-a-real-secret'),
    ('ParticipantTokenEncryptionKey', 'demo-participant-key-not-a-real-secret'),
    ('DeviceRegisterKey', 'demo-register-key-not-a-real-secret');

INSERT INTO t_services (service_uuid, service_name, service_key, service_hostname, service_port, service_endpoint,
                        service_clientendpoint, service_endpoint_user, service_enabled, service_system,
                        service_editable_config, service_default_config, service_has_assets, service_has_tests) VALUES
    ('00000000-0000-0000-0000-000000000001', 'OpenTera Server', 'OpenTeraServer', 'localhost', 4040, '/',
     '/', NULL, true, true, false, NULL, false, false),
    ('00000000-0000-0000-0000-000000000002', 'Vidéo Réhabilitation', 'VideoRehabService', 'localhost', 4070, '/',
     '/rehab', '/participant', true, false, true, '{"camera": "default"}', true, true);

INSERT INTO t_sites (site_name, site_2fa_required) VALUES ('Site de démo', false);
INSERT INTO t_projects (id_site, project_name, project_enabled, project_description) VALUES
    (1, 'Projet de démo', true, 'Sample project of the embedded database');
INSERT INTO t_participants_groups (id_project, participant_group_name) VALUES (1, 'Groupe A');
INSERT INTO t_users_groups (user_group_name) VALUES ('Administrateurs du site');

INSERT INTO t_users (user_username, user_email, user_firstname, user_lastname, user_password, user_enabled, user_profile,
                     user_superadmin, user_2fa_enabled, user_2fa_otp_enabled, user_2fa_email_enabled, user_2fa_otp_secret,
                     user_force_password_change) VALUES
    ('admin', 'admin@example.org', 'Super', 'Admin', '$2b$12$fakefakefakefakefakefuBvC8yqQ0E5w3x7e4y3f1QeJ2bDq', true, '{}',
     true, false, false, false, NULL, false),
    ('therapist', 'therapist@example.org', 'Anne', 'Thérapeute', '$2b$12$fakefakefakefakefakefuJ9Jx3l2nK8p0a1b2c3d4e5f6g7h8', true, '{}',
     false, false, false, false, 'DEMOOTPSECRETNOTREAL', false);

INSERT INTO t_devices (device_name, id_device_type, id_device_subtype, device_token, device_certificate, device_enabled,
                       device_onlineable, device_config, device_infos, device_notes) VALUES
    ('Kinect', 1, NULL, 'demo-device-token-not-real', NULL, true, false, '{}', '{}', NULL),
    ('Beam 1', 4, 1, NULL, NULL, true, true, NULL, NULL, 'in the lab');

INSERT INTO t_participants (participant_name, participant_username, participant_email, participant_password,
                            participant_token_enabled, participant_token, participant_enabled, participant_login_enabled,
                            id_participant_group, id_project) VALUES
    ('Participant 1', 'p1', 'p1@example.org', NULL, true, 'demo-participant-token-not-real', true, false, 1, 1);

INSERT INTO t_services_projects (id_service, id_project) VALUES (2, 1);
INSERT INTO t_services_roles (id_service, id_project, id_site, service_role_name) VALUES (2, 1, NULL, 'admin');

INSERT INTO t_sessions_types (id_service, session_type_name, session_type_online, session_type_config, session_type_color,
                              session_type_category) VALUES
    (2, 'Séance vidéo', true, NULL, '#00FF00', 1);
INSERT INTO t_sessions_types_projects (id_session_type, id_project) VALUES (1, 1);
INSERT INTO t_sessions_types_services (id_session_type, id_service) VALUES (1, 2);
INSERT INTO t_sessions_types_sites (id_session_type, id_site) VALUES (1, 1);

INSERT INTO t_tests_types (id_service, test_type_name, test_type_description, test_type_key, test_type_has_json_format,
                           test_type_has_web_format, test_type_has_web_editor) VALUES
    (2, 'Questionnaire', 'Questionnaire de suivi', 'QUESTIONNAIRE', true, true, false);

INSERT INTO t_sessions (id_session_type, id_creator_user, session_name, session_start_datetime, session_duration,
                        session_status, session_comments, session_parameters) VALUES
    (1, 2, 'Séance 1', '2025-01-15 10:00:00+00', 1800, 2, 'went well', NULL);
INSERT INTO t_assets (id_session, id_participant, id_service, asset_name, asset_service_uuid, asset_type, asset_datetime) VALUES
    (1, 1, 2, 'video.mp4', '00000000-0000-0000-0000-000000000002', 'video/mp4', '2025-01-15 10:30:00+00');
INSERT INTO t_tests (id_test_type, id_session, id_participant, id_service, test_name, test_datetime, test_status, test_summary) VALUES
    (1, 1, 1, 2, 'Questionnaire initial', '2025-01-15 10:35:00+00', 2, '{"score": 12}');
INSERT INTO t_tests_invitations (id_test_type, id_participant, id_project, test_invitation_key, test_invitation_max_count,
                                 test_invitation_count, test_invitation_creation_date, test_invitation_expiration_date,
                                 test_invitation_message) VALUES
    (1, 1, 1, 'DEMOKEY123456789', 3, 0, '2025-01-15 10:00:00+00', '2025-02-15 10:00:00+00', 'Merci de remplir le questionnaire');
