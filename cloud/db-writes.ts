/**
 * Which tables this process has written: a counter per table, bumped by every INSERT, UPDATE and DELETE the
 * query builder runs (a Kysely plugin on each service database). A reader that keeps what it read (the
 * compute API's create lookups) notes the counters of its tables before reading and trusts its copy only
 * while they have not moved. Each write bumps twice, when compiled and once it has run, so a read that
 * overlapped it is never taken as current. Raw SQL is not seen: the services write through the builder.
 */
import {
  AliasNode,
  TableNode,
  type KyselyPlugin,
  type OperationNode,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
} from 'kysely';

export class WriteGenerations implements KyselyPlugin {
  private readonly byTable = new Map<string, number>();
  /** Bumped by a write whose table could not be told: it moves every table's generation. */
  private unknown = 0;
  private readonly pending = new WeakMap<object, string[] | null>();

  /** The sum of these tables' counters: unchanged exactly while none of them was written. */
  generation(tables: readonly string[]): number {
    let sum = this.unknown;
    for (const table of tables) sum += this.byTable.get(table) ?? 0;
    return sum;
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const tables = writtenTables(args.node);
    if (tables !== undefined) {
      this.bump(tables);
      this.pending.set(args.queryId, tables);
    }
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const tables = this.pending.get(args.queryId);
    if (tables !== undefined) {
      this.pending.delete(args.queryId);
      this.bump(tables);
    }
    return args.result;
  }

  private bump(tables: string[] | null): void {
    if (tables === null) {
      this.unknown++;
      return;
    }
    for (const table of tables) this.byTable.set(table, (this.byTable.get(table) ?? 0) + 1);
  }
}

/** The tables a write names (null: a write whose target is not a plain table); undefined: not a write. */
function writtenTables(node: RootOperationNode): string[] | null | undefined {
  switch (node.kind) {
    case 'InsertQueryNode':
      return node.into ? tablesOf([node.into]) : null;
    case 'UpdateQueryNode':
      return node.table ? tablesOf([node.table]) : null;
    case 'DeleteQueryNode':
      return tablesOf(node.from.froms);
    default:
      return undefined;
  }
}

function tablesOf(nodes: readonly OperationNode[]): string[] | null {
  const names: string[] = [];
  for (const node of nodes) {
    const target = AliasNode.is(node) ? node.node : node;
    if (!TableNode.is(target)) return null;
    names.push(target.table.identifier.name);
  }
  return names;
}
