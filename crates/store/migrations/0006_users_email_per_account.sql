-- Switchyard schema, version 6: the identity model of issue 8 item 12. Portable SQL, as version 1.
--
-- A user belongs to exactly one account (platform administrators to none), and an e-mail
-- address is unique within an account and among platform administrators, never across
-- accounts: another account's users must not change an answer (creating a user, logging in).
-- The console login therefore names the account as well as the e-mail.
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_account_email_key ON users (COALESCE(account_id, ''), lower(email));
