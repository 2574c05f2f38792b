-- The data-scale set: 10,020 users and 1,041,900 tasks, written with SQL
-- for speed. The 100 users the load generator acts as ("bench-N") own 20
-- tasks each, like in the small set, so their list responses stay the same
-- size and only the table around them grows; the 20 users of the `page`
-- scenario ("page-N") own 2,000 each, a third of them done, nine in ten
-- with a due date; the other 9,900 users own 101 tasks each. :hash is a
-- real Argon2id hash taken from a user that signed up through the API, so
-- these accounts are valid in every way.
INSERT INTO users (id, email, password_hash, created_at)
SELECT gen_random_uuid(),
       CASE WHEN g <= 100 THEN 'bench-' || (g - 1) || '@bench.example'
            WHEN g <= 120 THEN 'page-' || (g - 101) || '@bench.example'
            ELSE 'seed-' || g || '@bench.example' END,
       :'hash',
       now() - interval '30 days'
FROM generate_series(1, 10020) AS g;

INSERT INTO tasks (id, user_id, title, description, completed, completed_at, due_at,
                   created_at, updated_at)
SELECT gen_random_uuid(), u.id, 'seeded task ' || n, NULL, n % 3 = 0,
       CASE WHEN n % 3 = 0 THEN stamp END,
       CASE WHEN n % 10 <> 0 THEN now() + random() * interval '90 days' END,
       stamp, stamp
FROM users AS u
CROSS JOIN LATERAL generate_series(1, CASE WHEN u.email LIKE 'bench-%' THEN 20
                                           WHEN u.email LIKE 'page-%' THEN 2000
                                           ELSE 101 END) AS n
CROSS JOIN LATERAL (SELECT now() - (n || ' minutes')::interval - random() * interval '1 minute' AS stamp) AS t;

-- Each user's count, which the service keeps as it creates and deletes.
UPDATE users SET task_count = (SELECT count(*) FROM tasks WHERE tasks.user_id = users.id);

ANALYZE users;
ANALYZE tasks;
