-- Quarry schema, version 8: ledger notifications once per statement, not per row.
--
-- A statement that changes balances, the journal or payment outputs (crediting a block writes a row
-- per miner) sends one NOTIFY quarry_ledger per pool naming every miner it touched, each once,
-- sorted: "POOL ADDRESS ADDRESS ...". When that does not fit in a notification (PostgreSQL refuses
-- payloads of 8000 bytes or more, about 150 miners), it sends "" instead: everyone, as a TRUNCATE
-- does. A payment whose status, txid, creation time or pool changes names its payees the same way.
-- The TRUNCATE triggers of 006 stay.
--
-- The triggers are statement-level and read the statement's rows from its transition tables; a
-- trigger with transition tables fires on one event only, so there is one per event (an INSERT ...
-- ON CONFLICT DO UPDATE runs the INSERT trigger for the rows it inserted and the UPDATE trigger for
-- the rows it updated). PostgreSQL delivers notifications at commit, and identical ones of one
-- transaction once.
DROP TRIGGER balances_notify ON balances;
DROP TRIGGER journal_notify ON journal;
DROP TRIGGER payment_outputs_notify ON payment_outputs;
DROP TRIGGER payments_notify ON payments;
DROP FUNCTION notify_ledger_row();
DROP FUNCTION notify_payment_output();
DROP FUNCTION notify_payment_payees();

CREATE FUNCTION notify_ledger(payload text) RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('quarry_ledger', CASE WHEN octet_length(payload) < 8000 THEN payload ELSE '' END)
$$;

-- balances and journal: the rows carry pool and address.
CREATE FUNCTION notify_ledger_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_ledger(pool || ' ' || string_agg(DISTINCT address, ' ' ORDER BY address))
       FROM new_rows GROUP BY pool;
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_ledger_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_ledger(pool || ' ' || string_agg(DISTINCT address, ' ' ORDER BY address))
       FROM (SELECT pool, address FROM new_rows UNION ALL SELECT pool, address FROM old_rows) AS changed
      GROUP BY pool;
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_ledger_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_ledger(pool || ' ' || string_agg(DISTINCT address, ' ' ORDER BY address))
       FROM old_rows GROUP BY pool;
    RETURN NULL;
END
$$;

CREATE TRIGGER balances_inserted_notify AFTER INSERT ON balances
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_inserted();
CREATE TRIGGER balances_updated_notify AFTER UPDATE ON balances
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_updated();
CREATE TRIGGER balances_deleted_notify AFTER DELETE ON balances
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_deleted();
-- The journal is append-only (journal_no_update refuses the rest).
CREATE TRIGGER journal_inserted_notify AFTER INSERT ON journal
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_ledger_inserted();

-- payment_outputs has no pool column: its rows name the miner with the payment's pool (an output
-- whose payment cannot be found concerns everyone).
CREATE FUNCTION notify_payment_outputs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_ledger(coalesce(p.pool || ' ' || string_agg(DISTINCT o.address, ' ' ORDER BY o.address), ''))
       FROM new_rows o LEFT JOIN payments p ON p.id = o.payment_id GROUP BY p.pool;
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_payment_outputs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_ledger(coalesce(p.pool || ' ' || string_agg(DISTINCT o.address, ' ' ORDER BY o.address), ''))
       FROM (SELECT payment_id, address FROM new_rows UNION ALL SELECT payment_id, address FROM old_rows) AS o
       LEFT JOIN payments p ON p.id = o.payment_id GROUP BY p.pool;
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_payment_outputs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_ledger(coalesce(p.pool || ' ' || string_agg(DISTINCT o.address, ' ' ORDER BY o.address), ''))
       FROM old_rows o LEFT JOIN payments p ON p.id = o.payment_id GROUP BY p.pool;
    RETURN NULL;
END
$$;

CREATE TRIGGER payment_outputs_inserted_notify AFTER INSERT ON payment_outputs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_payment_outputs_inserted();
CREATE TRIGGER payment_outputs_updated_notify AFTER UPDATE ON payment_outputs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION notify_payment_outputs_updated();
CREATE TRIGGER payment_outputs_deleted_notify AFTER DELETE ON payment_outputs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_payment_outputs_deleted();

-- A payment's payees, when what their pages show of it changes.
CREATE FUNCTION notify_payments_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_ledger(after.pool || ' ' || string_agg(DISTINCT o.address, ' ' ORDER BY o.address))
       FROM new_rows after
       JOIN old_rows before ON before.id = after.id
       JOIN payment_outputs o ON o.payment_id = after.id
      WHERE before.status IS DISTINCT FROM after.status OR before.txid IS DISTINCT FROM after.txid
         OR before.created IS DISTINCT FROM after.created OR before.pool IS DISTINCT FROM after.pool
      GROUP BY after.pool;
    RETURN NULL;
END
$$;

CREATE TRIGGER payments_updated_notify AFTER UPDATE ON payments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION notify_payments_updated();
