-- The data-scale set: 10,000 users and 1,001,900 tasks, written with SQL
-- for speed. The 100 users the load generator acts as ("bench-N") own 20
-- tasks each, like in the small set, so their list responses stay the same
-- size and only the table around them grows; the other 9,900 users own
-- 101 tasks each. :hash is a real Argon2id hash taken from a user that
-- signed up through the API, so these accounts are valid in every way.
INSERT INTO users (id, email, password_hash, created_at)
SELECT gen_random_uuid(),
       CASE WHEN g <= 100 THEN 'bench-' || (g - 1) || '@bench.example'
            ELSE 'seed-' || g || '@bench.example' END,
       :'hash',
       now() - interval '30 days'
FROM generate_series(1, 10000) AS g;

INSERT INTO tasks (id, user_id, title, description, completed, created_at, updated_at)
SELECT gen_random_uuid(), u.id, 'seeded task ' || n, NULL, n % 3 = 0, stamp, stamp
FROM users AS u
CROSS JOIN LATERAL generate_series(1, CASE WHEN u.email LIKE 'bench-%' THEN 20 ELSE 101 END) AS n
CROSS JOIN LATERAL (SELECT now() - (n || ' minutes')::interval - random() * interval '1 minute' AS stamp) AS t;

ANALYZE users;
ANALYZE tasks;
