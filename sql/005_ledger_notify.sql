-- Every statement that changes money a miner's page shows (balances, the journal, payments and their
-- outputs) sends NOTIFY quarry_ledger, delivered when its transaction commits (once per transaction).
-- The API keeps each miner's balance and payments in memory until such a notification comes.
CREATE FUNCTION notify_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('quarry_ledger', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER balances_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON balances
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_change();
CREATE TRIGGER journal_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_change();
CREATE TRIGGER payments_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON payments
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_change();
CREATE TRIGGER payment_outputs_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON payment_outputs
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_change();
