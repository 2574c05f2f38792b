// Calls the generated types must refuse. Each `@ts-expect-error` needs an
// error on the line below it: if the types ever grow loose enough to accept
// one of these calls (a sort that became any string, a priority that became
// `unknown`, a path id that became optional), tsc reports the directive as
// unused and `npm run check` fails. Never run, only type-checked.
import type { TodoClient } from "./client.js";

export async function refusedCalls(client: TodoClient, id: string): Promise<void> {
  // A sort field the API does not have.
  // @ts-expect-error "color" is not one of the sort fields
  await client.GET("/api/tasks", { params: { query: { sort: "color" } } });

  // A page size of the wrong type.
  // @ts-expect-error limit is a number, not a string
  await client.GET("/api/tasks", { params: { query: { limit: "20" } } });

  // A priority of the wrong type, and one that is not among the four words.
  // @ts-expect-error priority is a string, not a number
  await client.POST("/api/tasks", { body: { title: "x", priority: 3 } });
  // @ts-expect-error "urgent" is not a priority
  await client.PATCH("/api/tasks/{id}", { params: { path: { id } }, body: { priority: "urgent" } });

  // A new task without its title.
  // @ts-expect-error title is required
  await client.POST("/api/tasks", { body: { priority: "low" } });

  // The feed takes `since` only, and a change's task exists only on an upsert.
  // @ts-expect-error the feed has no limit
  await client.GET("/api/tasks/changes", { params: { query: { limit: 5 } } });
  const feed = await client.GET("/api/tasks/changes");
  const change = feed.data?.changes[0];
  if (change?.op === "delete") {
    // @ts-expect-error a deletion carries only the id
    console.log(change.task);
  }

  // A PATCH without the path id.
  // @ts-expect-error params.path.id is required
  await client.PATCH("/api/tasks/{id}", { body: { title: "x" } });

  // Clearing without `completed=true`, and with anything other than "true".
  // @ts-expect-error the completed query parameter is required
  await client.DELETE("/api/tasks", {});
  // @ts-expect-error only "true" is accepted
  await client.DELETE("/api/tasks", { params: { query: { completed: "false" } } });

  // A path the API does not have.
  // @ts-expect-error there is no /api/task
  await client.GET("/api/task", {});

  // An error code no answer of this operation carries.
  const { error } = await client.PUT("/api/tasks/{id}", { params: { path: { id } }, body: { title: "x" } });
  // @ts-expect-error a PUT never answers "task_limit_reached"
  if (error?.code === "task_limit_reached") {
    return;
  }

  // A task answer has no owner field.
  const { data } = await client.GET("/api/tasks/{id}", { params: { path: { id } } });
  // @ts-expect-error user_id is not part of a task
  console.log(data?.user_id);
}
