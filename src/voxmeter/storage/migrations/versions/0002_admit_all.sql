-- The calls a worker admits in one event-loop turn, in one round trip, one
-- after the other in the order they asked: a call is admitted if its token
-- is still active and its operation at the revision its principal was read
-- at (else 'credential_changed'), both day counters are under their limits
-- ('quota_exceeded') and the token has a free slot ('too_many_in_flight').
-- Each operation's lock is taken first, in one order, so two workers'
-- batches cannot deadlock. Each counter and each token's slots are read
-- once, kept in arrays (keyed 'id|day') while the asks are decided, and
-- written once. Each answer carries the operation's ledger version, which
-- tells the worker whether the figures it has cached are still current.
-- Call counters and slots are not worth a WAL flush per call: a server
-- crash may forget the last few calls counted, never corrupt anything (the
-- ledger's commits stay synchronous).
CREATE FUNCTION voxmeter_admit_all(
    p_tokens text[], p_operations bigint[], p_revisions bigint[], p_days date[],
    p_token_limits bigint[], p_operation_limits bigint[], p_concurrency integer[],
    p_lease_until timestamptz[], p_now timestamptz[]
) RETURNS TABLE (verdict text, token_used bigint, operation_used bigint, slot integer,
                 ledger_version bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n integer := coalesce(array_length(p_tokens, 1), 0);
    v_verdicts text[] := array_fill(NULL::text, ARRAY[n]);
    v_token_used bigint[] := array_fill(0::bigint, ARRAY[n]);
    v_operation_used bigint[] := array_fill(0::bigint, ARRAY[n]);
    v_slots integer[] := array_fill(NULL::integer, ARRAY[n]);
    v_versions bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    -- operation counters, by 'operation|day'
    o_keys text[] := '{}';
    o_ids bigint[] := '{}';
    o_days date[] := '{}';
    o_used bigint[] := '{}';
    o_counted boolean[] := '{}';
    o_versions bigint[] := '{}';
    -- token counters, by 'token|day'
    t_keys text[] := '{}';
    t_ids text[] := '{}';
    t_days date[] := '{}';
    t_used bigint[] := '{}';
    t_last timestamptz[] := '{}';
    -- credentials checked, by 'token|revision'
    c_keys text[] := '{}';
    c_current boolean[] := '{}';
    -- slots taken, as 'token|slot'; the tokens whose slots were read
    b_keys text[] := '{}';
    b_tokens text[] := '{}';
    -- slots taken by this batch
    n_tokens text[] := '{}';
    n_slots integer[] := '{}';
    n_leases timestamptz[] := '{}';
    v_lock bigint;
    v_key text;
    o integer;
    t integer;
    c integer;
    v_slot integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR v_lock IN SELECT DISTINCT x FROM unnest(p_operations) AS x ORDER BY x LOOP
        PERFORM pg_advisory_xact_lock(72451, v_lock::integer);
    END LOOP;
    FOR i IN 1 .. n LOOP
        v_key := p_operations[i] || '|' || p_days[i];
        o := array_position(o_keys, v_key);
        IF o IS NULL THEN
            o_keys := o_keys || v_key;
            o_ids := o_ids || p_operations[i];
            o_days := o_days || p_days[i];
            o_used := o_used || coalesce((SELECT x.used FROM operation_calls x
                                          WHERE x.operation_id = p_operations[i]
                                            AND x.day = p_days[i]), 0);
            o_counted := o_counted || false;
            o_versions := o_versions || (SELECT x.ledger_version FROM operations x
                                         WHERE x.id = p_operations[i]);
            o := array_length(o_keys, 1);
        END IF;
        v_key := p_tokens[i] || '|' || p_days[i];
        t := array_position(t_keys, v_key);
        IF t IS NULL THEN
            t_keys := t_keys || v_key;
            t_ids := t_ids || p_tokens[i];
            t_days := t_days || p_days[i];
            t_used := t_used || coalesce((SELECT x.used FROM token_calls x
                                          WHERE x.token_id = p_tokens[i]
                                            AND x.day = p_days[i]), 0);
            t_last := t_last || NULL::timestamptz;
            t := array_length(t_keys, 1);
        END IF;
        v_key := p_tokens[i] || '|' || p_revisions[i];
        c := array_position(c_keys, v_key);
        IF c IS NULL THEN
            c_keys := c_keys || v_key;
            c_current := c_current || EXISTS (
                SELECT 1 FROM tokens x JOIN operations y ON y.id = x.operation_id
                 WHERE x.id = p_tokens[i] AND x.revoked_at IS NULL
                   AND y.id = p_operations[i] AND y.revision = p_revisions[i]);
            c := array_length(c_keys, 1);
        END IF;
        IF array_position(b_tokens, p_tokens[i]) IS NULL THEN
            b_tokens := b_tokens || p_tokens[i];
            b_keys := b_keys || ARRAY(SELECT p_tokens[i] || '|' || x.slot FROM token_slots x
                                       WHERE x.token_id = p_tokens[i]
                                         AND x.lease_until > p_now[i]);
        END IF;
        v_versions[i] := o_versions[o];
        v_token_used[i] := t_used[t];
        v_operation_used[i] := o_used[o];
        IF NOT c_current[c] THEN
            v_verdicts[i] := 'credential_changed';
            v_token_used[i] := 0;
            v_operation_used[i] := 0;
            CONTINUE;
        END IF;
        IF t_used[t] >= p_token_limits[i] OR o_used[o] >= p_operation_limits[i] THEN
            v_verdicts[i] := 'quota_exceeded';
            CONTINUE;
        END IF;
        v_slot := NULL;
        FOR s IN 0 .. p_concurrency[i] - 1 LOOP
            IF array_position(b_keys, p_tokens[i] || '|' || s) IS NULL THEN
                v_slot := s;
                EXIT;
            END IF;
        END LOOP;
        IF v_slot IS NULL THEN
            v_verdicts[i] := 'too_many_in_flight';
            CONTINUE;
        END IF;
        b_keys := b_keys || (p_tokens[i] || '|' || v_slot);
        n_tokens := n_tokens || p_tokens[i];
        n_slots := n_slots || v_slot;
        n_leases := n_leases || p_lease_until[i];
        t_used[t] := t_used[t] + 1;
        o_used[o] := o_used[o] + 1;
        t_last[t] := greatest(t_last[t], p_now[i]);
        o_counted[o] := true;
        v_verdicts[i] := 'admitted';
        v_slots[i] := v_slot;
        v_token_used[i] := t_used[t];
        v_operation_used[i] := o_used[o];
    END LOOP;
    -- Every counter and slot this batch changed, written once.
    INSERT INTO token_slots AS x (token_id, slot, lease_until)
         SELECT * FROM unnest(n_tokens, n_slots, n_leases)
    ON CONFLICT (token_id, slot) DO UPDATE SET lease_until = excluded.lease_until;
    INSERT INTO token_calls AS x (token_id, day, used, last_at)
         SELECT * FROM unnest(t_ids, t_days, t_used, t_last) AS y(token_id, day, used, last_at)
          WHERE y.last_at IS NOT NULL
    ON CONFLICT (token_id, day) DO UPDATE
        SET used = excluded.used, last_at = greatest(x.last_at, excluded.last_at);
    INSERT INTO operation_calls AS x (operation_id, day, used)
         SELECT y.operation_id, y.day, y.used
           FROM unnest(o_ids, o_days, o_used, o_counted) AS y(operation_id, day, used, counted)
          WHERE y.counted
    ON CONFLICT (operation_id, day) DO UPDATE SET used = excluded.used;
    RETURN QUERY SELECT v_verdicts[j], v_token_used[j], v_operation_used[j], v_slots[j],
                        v_versions[j]
                   FROM generate_series(1, n) AS j ORDER BY j;
END
$$
