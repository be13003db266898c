-- Changes to the money a miner's page shows are announced with NOTIFY quarry_ledger, delivered when
-- the transaction commits: a row of balances, the journal or payment_outputs names its miner (payload
-- "POOL ADDRESS"); a payment whose status or txid changes names each of its payees; a TRUNCATE
-- concerns everyone (payload ""). The API keeps each miner's balance and payments in memory until a
-- notification names them.
CREATE FUNCTION notify_ledger_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('quarry_ledger', OLD.pool || ' ' || OLD.address);
    ELSE
        PERFORM pg_notify('quarry_ledger', NEW.pool || ' ' || NEW.address);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_ledger_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('quarry_ledger', '');
    RETURN NULL;
END
$$;

-- payment_outputs has no pool column: its rows name the miner with the payment's pool.
CREATE FUNCTION notify_payment_output() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    output payment_outputs%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' THEN output := OLD; ELSE output := NEW; END IF;
    PERFORM pg_notify('quarry_ledger', coalesce((SELECT pool FROM payments WHERE id = output.payment_id), '')
                                       || ' ' || output.address);
    RETURN NULL;
END
$$;

CREATE TRIGGER balances_notify AFTER INSERT OR UPDATE OR DELETE ON balances
    FOR EACH ROW EXECUTE FUNCTION notify_ledger_row();
CREATE TRIGGER journal_notify AFTER INSERT OR UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION notify_ledger_row();
CREATE TRIGGER payment_outputs_notify AFTER INSERT OR UPDATE OR DELETE ON payment_outputs
    FOR EACH ROW EXECUTE FUNCTION notify_payment_output();
CREATE FUNCTION notify_payment_payees() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('quarry_ledger', NEW.pool || ' ' || address) FROM payment_outputs WHERE payment_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER payments_notify AFTER UPDATE ON payments FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.txid IS DISTINCT FROM NEW.txid
          OR OLD.created IS DISTINCT FROM NEW.created OR OLD.pool IS DISTINCT FROM NEW.pool)
    EXECUTE FUNCTION notify_payment_payees();
CREATE TRIGGER payments_truncated AFTER TRUNCATE ON payments
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_all();
CREATE TRIGGER balances_truncated AFTER TRUNCATE ON balances
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_all();
CREATE TRIGGER journal_truncated AFTER TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_all();
CREATE TRIGGER payment_outputs_truncated AFTER TRUNCATE ON payment_outputs
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_all();
