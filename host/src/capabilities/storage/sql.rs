//! Checks a plugin's SQL and moves every name it writes into the plugin's namespace.
//!
//! The statement is parsed (sqlparser, the backend's dialect), checked against what plugins
//! may do, rewritten, and printed again: the database only ever runs SQL printed from a
//! checked tree, never the plugin's text. Table and index names become `"<plugin>.<name>"`;
//! a table in `FROM` keeps its short name as an alias, so `notes.id` still reads. What could
//! reach outside the namespace is refused: qualified names, `WITH` (a CTE name would
//! escape the rewrite), table functions, functions outside a portable set, and every
//! statement but `SELECT` / `INSERT` / `UPDATE` / `DELETE` (plus table and index DDL in
//! migrations).

use std::{collections::BTreeSet, ops::ControlFlow};

use sqlparser::{
    ast::{
        AlterTableOperation, ColumnDef, ColumnOption, CreateTableOptions, Expr, FromTable, Ident,
        ObjectName, ObjectNamePart, ObjectType, Query, RenameTableNameKind, Select, SetExpr,
        Statement, TableAlias, TableConstraint, TableFactor, TableObject, Value, ValueWithSpan,
        VisitMut, VisitorMut,
    },
    dialect::{Dialect, PostgreSqlDialect, SQLiteDialect},
    parser::Parser,
};

use crate::db::Backend;

/// The longest statement a plugin may send.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// The longest table or index name: with the plugin's name (32) and a dot it fits
/// Postgres' 63-byte identifiers.
const MAX_NAME_BYTES: usize = 30;

/// Functions plugins may call: aggregates and scalars both backends have.
const FUNCTIONS: &[&str] = &[
    "abs",
    "avg",
    "coalesce",
    "count",
    "dense_rank",
    "length",
    "lower",
    "max",
    "min",
    "nullif",
    "random",
    "rank",
    "replace",
    "round",
    "row_number",
    "sum",
    "upper",
];

/// Why a statement was refused before it reached the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// It does not parse, or its placeholders are not `$1..$n`.
    #[error("{0}")]
    Invalid(String),
    /// It parses but is not something a plugin may run.
    #[error("{0}")]
    Forbidden(String),
}

/// Where a statement comes from: what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// A call at run time: data statements, values only as parameters.
    Data,
    /// A migration: table and index DDL too, literals allowed, no parameters.
    Migration,
}

/// A checked data statement, printed for the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The SQL to run.
    pub sql: String,
    /// How many parameters it binds: the non-NULL ones, renumbered.
    pub params: usize,
    /// Whether it only reads: a query (its checks leave no way to write from one), which
    /// needs no transaction around it.
    pub reads_only: bool,
}

/// Checks one data statement of `plugin` and rewrites it for `backend`. `nulls` says, for
/// each parameter given, whether it is NULL: those are written into the statement as
/// `NULL` (a bound NULL carries a type Postgres may refuse for the column), the others
/// renumbered.
pub fn check_data(
    plugin: &str,
    sql: &str,
    backend: Backend,
    nulls: &[bool],
) -> Result<Checked, SqlError> {
    let mut statements = parse(sql, backend)?;
    if statements.len() > 1 {
        return Err(SqlError::Forbidden(
            "one statement per call (a batch runs several in one transaction)".to_owned(),
        ));
    }
    let mut statement = statements
        .pop()
        .ok_or_else(|| SqlError::Invalid("there is no statement".to_owned()))?;
    let placeholders = rewrite(plugin, &mut statement, Use::Data, nulls)?;
    if placeholders.iter().copied().ne(1..=nulls.len()) {
        return Err(SqlError::Invalid(format!(
            "{} parameter(s) given: the statement must use each of $1..${} once or more, and no other",
            nulls.len(),
            nulls.len()
        )));
    }
    Ok(Checked {
        sql: print(&statement, backend),
        params: nulls.iter().filter(|null| !**null).count(),
        reads_only: matches!(statement, Statement::Query(_)),
    })
}

/// Checks a migration of `plugin` (statements separated by `;`) and rewrites each for
/// `backend`.
pub fn check_migration(plugin: &str, sql: &str, backend: Backend) -> Result<Vec<String>, SqlError> {
    parse(sql, backend)?
        .into_iter()
        .map(|mut statement| {
            rewrite(plugin, &mut statement, Use::Migration, &[])?;
            Ok(print(&statement, backend))
        })
        .collect()
}

fn parse(sql: &str, backend: Backend) -> Result<Vec<Statement>, SqlError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(SqlError::Invalid(format!(
            "the statement is {} bytes; the limit is {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    let dialect: &dyn Dialect = match backend {
        Backend::Sqlite => &SQLiteDialect {},
        Backend::Postgres => &PostgreSqlDialect {},
    };
    let statements = Parser::parse_sql(dialect, sql)
        .map_err(|error| SqlError::Invalid(format!("the statement does not parse: {error}")))?;
    if statements.is_empty() {
        return Err(SqlError::Invalid("there is no statement".to_owned()));
    }
    Ok(statements)
}

/// Checks and rewrites one statement; returns the parameter numbers it uses.
fn rewrite(
    plugin: &str,
    statement: &mut Statement,
    used: Use,
    nulls: &[bool],
) -> Result<BTreeSet<usize>, SqlError> {
    check_statement(plugin, statement, used)?;
    let mut rewrite = Rewrite {
        plugin,
        used,
        nulls,
        placeholders: BTreeSet::new(),
        error: None,
    };
    match statement.visit(&mut rewrite) {
        ControlFlow::Continue(()) => Ok(rewrite.placeholders),
        ControlFlow::Break(()) => Err(rewrite
            .error
            .unwrap_or_else(|| SqlError::Forbidden("the statement was refused".to_owned()))),
    }
}

fn print(statement: &Statement, backend: Backend) -> String {
    let sql = statement.to_string();
    match backend {
        // SQLite reads `$1` as a named parameter; `?1` is its numbered one.
        Backend::Sqlite => numbered_for_sqlite(&sql),
        Backend::Postgres => sql,
    }
}

/// The statement kinds plugins may run, and the names in them the visitor does not see.
fn check_statement(plugin: &str, statement: &mut Statement, used: Use) -> Result<(), SqlError> {
    let migration_only = |what: &str| {
        if used == Use::Migration {
            Ok(())
        } else {
            Err(SqlError::Forbidden(format!(
                "{what} only in a migration: tables change with the plugin's version"
            )))
        }
    };
    match statement {
        Statement::Query(_) => Ok(()),
        Statement::Insert(insert) => {
            if !matches!(insert.table, TableObject::TableName(_))
                || insert.output.is_some()
                || insert.insert_alias.is_some()
                || insert.partitioned.is_some()
                || insert.settings.is_some()
                || insert.format_clause.is_some()
            {
                return Err(forbidden("this form of INSERT"));
            }
            // The target keeps its short name, for `notes.count + excluded.count`.
            if insert.table_alias.is_none()
                && let TableObject::TableName(name) = &insert.table
            {
                insert.table_alias = Some(sqlparser::ast::TableAliasWithoutColumns {
                    explicit: true,
                    alias: short_name(name)?,
                });
            }
            Ok(())
        }
        Statement::Update(update) => {
            if update.output.is_some() {
                return Err(forbidden("this form of UPDATE"));
            }
            Ok(())
        }
        Statement::Delete(delete) => {
            if !delete.tables.is_empty()
                || delete.output.is_some()
                || matches!(delete.from, FromTable::WithoutKeyword(_))
            {
                return Err(forbidden("this form of DELETE"));
            }
            Ok(())
        }
        Statement::CreateTable(create) => {
            migration_only("CREATE TABLE")?;
            if create.temporary
                || create.external
                || create.query.is_some()
                || create.like.is_some()
                || create.clone.is_some()
                || create.inherits.is_some()
                || create.partition_of.is_some()
                || create.on_commit.is_some()
                || !matches!(create.table_options, CreateTableOptions::None)
            {
                return Err(forbidden("this form of CREATE TABLE"));
            }
            for column in &mut create.columns {
                own_foreign_keys(plugin, column)?;
            }
            for constraint in &mut create.constraints {
                if let TableConstraint::ForeignKey(key) = constraint {
                    own(plugin, &mut key.foreign_table)?;
                }
            }
            Ok(())
        }
        Statement::CreateIndex(index) => {
            migration_only("CREATE INDEX")?;
            let Some(name) = &mut index.name else {
                return Err(forbidden("an index without a name"));
            };
            own(plugin, name)
        }
        Statement::AlterTable(alter) => {
            migration_only("ALTER TABLE")?;
            for operation in &mut alter.operations {
                match operation {
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        own_foreign_keys(plugin, column_def)?;
                    }
                    AlterTableOperation::DropColumn { .. }
                    | AlterTableOperation::RenameColumn { .. } => {}
                    AlterTableOperation::RenameTable { table_name } => match table_name {
                        RenameTableNameKind::As(name) | RenameTableNameKind::To(name) => {
                            own(plugin, name)?;
                        }
                    },
                    _ => {
                        return Err(forbidden(
                            "this ALTER TABLE (add, drop or rename a column, rename the table)",
                        ));
                    }
                }
            }
            Ok(())
        }
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::Index,
            names,
            temporary: false,
            table: None,
            ..
        } => {
            migration_only("DROP")?;
            names.iter_mut().try_for_each(|name| own(plugin, name))
        }
        _ => Err(forbidden(
            "this kind of statement (plugins run SELECT, INSERT, UPDATE and DELETE)",
        )),
    }
}

fn forbidden(what: &str) -> SqlError {
    SqlError::Forbidden(format!("{what} is not allowed"))
}

fn own_foreign_keys(plugin: &str, column: &mut ColumnDef) -> Result<(), SqlError> {
    for option in &mut column.options {
        if let ColumnOption::ForeignKey(key) = &mut option.option {
            own(plugin, &mut key.foreign_table)?;
        }
    }
    Ok(())
}

/// The one unqualified name in `name`, lowercased as both backends fold it.
fn short_name(name: &ObjectName) -> Result<Ident, SqlError> {
    let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
        return Err(SqlError::Forbidden(format!(
            "{name}: name tables without a schema; every table is the plugin's own"
        )));
    };
    let short = match ident.quote_style {
        None => ident.value.to_ascii_lowercase(),
        Some('"') => ident.value.clone(),
        Some(_) => return Err(SqlError::Forbidden(format!("{ident}: quote names with \""))),
    };
    let valid = short.len() <= MAX_NAME_BYTES
        && short.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && short
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(SqlError::Forbidden(format!(
            "{ident}: table and index names are 1 to {MAX_NAME_BYTES} lowercase letters, digits and '_'"
        )));
    }
    Ok(Ident::new(short))
}

/// Moves `name` into the plugin's namespace.
fn own(plugin: &str, name: &mut ObjectName) -> Result<(), SqlError> {
    let short = short_name(name)?;
    *name = ObjectName::from(vec![Ident::with_quote(
        '"',
        format!("{plugin}.{}", short.value),
    )]);
    Ok(())
}

/// Walks the whole statement: relations, table factors, expressions and values.
struct Rewrite<'a> {
    plugin: &'a str,
    used: Use,
    nulls: &'a [bool],
    placeholders: BTreeSet<usize>,
    error: Option<SqlError>,
}

impl Rewrite<'_> {
    fn refuse(&mut self, error: SqlError) -> ControlFlow<()> {
        self.error = Some(error);
        ControlFlow::Break(())
    }

    fn check(&mut self, result: Result<(), SqlError>) -> ControlFlow<()> {
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => self.refuse(error),
        }
    }
}

impl VisitorMut for Rewrite<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if query.with.is_some() {
            return self.refuse(forbidden("WITH"));
        }
        if query.for_clause.is_some()
            || query.settings.is_some()
            || query.format_clause.is_some()
            || !query.pipe_operators.is_empty()
        {
            return self.refuse(forbidden("this form of query"));
        }
        let result = check_set_expr(&query.body);
        self.check(result)
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        if select.into.is_some() || !select.lateral_views.is_empty() {
            return self.refuse(forbidden("SELECT INTO"));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        let result = own(self.plugin, relation);
        self.check(result)
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    return self.refuse(forbidden("a table function"));
                }
                if alias.is_none() {
                    match short_name(name) {
                        Ok(short) => {
                            *alias = Some(TableAlias {
                                explicit: true,
                                name: short,
                                columns: Vec::new(),
                                at: None,
                            });
                        }
                        Err(error) => return self.refuse(error),
                    }
                }
                ControlFlow::Continue(())
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => {
                ControlFlow::Continue(())
            }
            _ => self.refuse(forbidden(
                "this kind of FROM item (tables and subqueries are)",
            )),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => {
                let name = match function.name.0.as_slice() {
                    [ObjectNamePart::Identifier(ident)] => ident.value.to_ascii_lowercase(),
                    _ => String::new(),
                };
                if FUNCTIONS.contains(&name.as_str()) {
                    ControlFlow::Continue(())
                } else {
                    self.refuse(SqlError::Forbidden(format!(
                        "function {}: plugins may call {}",
                        function.name,
                        FUNCTIONS.join(", ")
                    )))
                }
            }
            Expr::Lambda(_) => self.refuse(forbidden("this expression")),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        match (&value.value, self.used) {
            (Value::Number(..) | Value::Boolean(_) | Value::Null, _) => ControlFlow::Continue(()),
            (Value::Placeholder(text), Use::Data) => {
                match text.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) if n >= 1 => {
                        self.placeholders.insert(n);
                        if let Some(before) = self.nulls.get(..n) {
                            value.value = match before.last() {
                                Some(true) => Value::Null,
                                _ => {
                                    let nulls = before.iter().filter(|null| **null).count();
                                    Value::Placeholder(format!("${}", n - nulls))
                                }
                            };
                        }
                        ControlFlow::Continue(())
                    }
                    _ => self.refuse(SqlError::Invalid(format!(
                        "parameter {text}: write parameters as $1, $2..."
                    ))),
                }
            }
            (Value::Placeholder(text), Use::Migration) => self.refuse(SqlError::Invalid(format!(
                "parameter {text}: a migration takes no parameters"
            ))),
            (_, Use::Migration) => ControlFlow::Continue(()),
            (_, Use::Data) => self.refuse(SqlError::Forbidden(
                "a quoted value in the statement: pass values as parameters ($1, $2...)".to_owned(),
            )),
        }
    }
}

/// The parts of a query's body: selects, values and set operations of them.
fn check_set_expr(body: &SetExpr) -> Result<(), SqlError> {
    match body {
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Query(_) => Ok(()),
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        _ => Err(forbidden("this kind of query")),
    }
}

/// `$n` outside quotes becomes `?n`. Quoted text cannot hold one the plugin wrote (data
/// statements have no string literals, migrations no parameters), but names can.
fn numbered_for_sqlite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            (None, '$') if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(sql: &str) -> Result<String, SqlError> {
        let params = sql.matches('$').count();
        Ok(check_data("notes-bot", sql, Backend::Postgres, &vec![false; params])?.sql)
    }

    fn refused(sql: &str) -> String {
        match data(sql) {
            Ok(sql) => panic!("accepted: {sql}"),
            Err(SqlError::Forbidden(why) | SqlError::Invalid(why)) => why,
        }
    }

    fn refused_for(sql: &str, reason: &str) {
        let why = refused(sql);
        assert!(why.contains(reason), "{sql}: {why}");
    }

    #[test]
    fn names_move_into_the_plugins_namespace() {
        assert_eq!(
            data("SELECT notes.body FROM Notes WHERE id = $1").unwrap(),
            r#"SELECT notes.body FROM "notes-bot.notes" AS notes WHERE id = $1"#
        );
        assert_eq!(
            data("INSERT INTO tally (k, n) VALUES ($1, 1) ON CONFLICT (k) DO UPDATE SET n = tally.n + excluded.n").unwrap(),
            r#"INSERT INTO "notes-bot.tally" AS tally (k, n) VALUES ($1, 1) ON CONFLICT(k) DO UPDATE SET n = tally.n + excluded.n"#
        );
        assert_eq!(
            data("DELETE FROM notes n WHERE n.id IN (SELECT id FROM old)").unwrap(),
            r#"DELETE FROM "notes-bot.notes" n WHERE n.id IN (SELECT id FROM "notes-bot.old" AS old)"#
        );
    }

    #[test]
    fn nothing_outside_the_namespace_can_be_named() {
        refused_for("SELECT * FROM public.config_entries", "without a schema");
        refused_for("SELECT * FROM main.sqlite_master", "without a schema");
        refused_for("WITH c AS (SELECT 1) SELECT * FROM c", "WITH");
        refused_for("SELECT query_to_xml($1, true, true, $2)", "query_to_xml");
        refused_for("SELECT * FROM generate_series(1, 5)", "table function");
        refused_for("TABLE config_entries", "does not parse");
        refused_for("SELECT 1 INTO copy", "INTO");
        for sqlite in ["PRAGMA table_info('notes')", "ATTACH 'other.db' AS other"] {
            let refused = check_data("p", sqlite, Backend::Sqlite, &[]);
            assert!(
                matches!(&refused, Err(SqlError::Forbidden(why)) if why.contains("kind of statement")),
                "{sqlite}: {refused:?}"
            );
        }
        refused_for("DROP TABLE notes", "migration");
        refused_for("SELECT 1; SELECT 2", "one statement");
    }

    #[test]
    fn quoted_names_are_printed_as_one_name() {
        // The database runs the printed tree: a quote inside a name stays inside it.
        let printed =
            data(r#"SELECT "a"" FROM config_entries --" FROM notes WHERE id = $1"#).unwrap();
        assert_eq!(
            printed,
            r#"SELECT "a"" FROM config_entries --" FROM "notes-bot.notes" AS notes WHERE id = $1"#
        );
    }

    #[test]
    fn values_come_only_as_parameters() {
        refused_for("SELECT * FROM notes WHERE body = 'x'", "parameters");
        refused_for("SELECT ?", "does not parse");
        let sqlite = check_data("p", "SELECT ?", Backend::Sqlite, &[false]);
        assert!(matches!(sqlite, Err(SqlError::Invalid(why)) if why.contains("$1, $2")));
        let gap = check_data("p", "SELECT $2", Backend::Postgres, &[false, false]);
        assert!(matches!(gap, Err(SqlError::Invalid(why)) if why.contains("$1..$2")));
        let checked = check_data("p", "SELECT $1, $2, $1", Backend::Sqlite, &[false; 2]).unwrap();
        assert_eq!(checked.sql, "SELECT ?1, ?2, ?1");
        assert_eq!(checked.params, 2);
    }

    #[test]
    fn null_parameters_are_written_in_and_the_rest_renumbered() {
        let nulls = [false, true, false];
        let checked = check_data("p", "SELECT $1, $2, $3", Backend::Postgres, &nulls).unwrap();
        assert_eq!(checked.sql, "SELECT $1, NULL, $2");
        assert_eq!(checked.params, 2);
    }

    #[test]
    fn migrations_create_tables_and_indexes_in_the_namespace() {
        let sql = check_migration(
            "p",
            "CREATE TABLE notes (id BIGINT PRIMARY KEY, author BIGINT REFERENCES people (id), body TEXT DEFAULT 'x');
             CREATE INDEX by_author ON notes (author);
             ALTER TABLE notes RENAME TO notes2;
             DROP INDEX by_author;
             DROP TABLE notes2",
            Backend::Sqlite,
        )
        .unwrap();
        assert_eq!(
            sql,
            [
                r#"CREATE TABLE "p.notes" (id BIGINT PRIMARY KEY, author BIGINT REFERENCES "p.people" (id), body TEXT DEFAULT 'x')"#,
                r#"CREATE INDEX "p.by_author" ON "p.notes"(author)"#,
                r#"ALTER TABLE "p.notes" RENAME TO "p.notes2""#,
                r#"DROP INDEX "p.by_author""#,
                r#"DROP TABLE "p.notes2""#,
            ]
        );
        let temp = check_migration("p", "CREATE TEMP TABLE t (x INT)", Backend::Sqlite);
        assert!(matches!(temp, Err(SqlError::Forbidden(_))));
    }
}
