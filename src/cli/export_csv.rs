//! A Zoho export as `zdel enqueue --csv` reads it: a header row, the record
//! ID in a column found by its name (`Record Id`, `id`, `ID`, `<Module> Id`,
//! or `--id-column NAME`), values maybe prefixed `zcrm_`, other columns
//! ignored. Quoting, embedded newlines, a BOM and CRLF are the csv crate's
//! business. A file where no column qualifies, or where two qualifying
//! columns disagree, is refused naming them; a bad value names its line and
//! column.

use std::io::Read;

/// Zoho's export prefix on record IDs (seen in some exports; both accepted).
const ZCRM_PREFIX: &str = "zcrm_";

/// Where the IDs are in a CSV file.
#[derive(Debug)]
pub struct IdColumns {
    /// The column read (index, header as written).
    pub primary: (usize, String),
    /// Other columns that also look like the record ID: they must agree.
    pub others: Vec<(usize, String)>,
}

/// A header's name as compared: lower case, without spaces and underscores.
fn squashed(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a header names the record ID of `module`'s records.
fn is_id_header(name: &str, module: &str) -> bool {
    if name.contains('.') {
        // A lookup's ID (`Account Name.id`), not this record's.
        return false;
    }
    let name = squashed(name);
    let module = squashed(module);
    let singular = module.strip_suffix('s').unwrap_or(&module);
    name == "recordid"
        || name == "id"
        || name == format!("{module}id")
        || name == format!("{singular}id")
}

/// Find the ID columns in `headers`, or say why there are none.
pub fn id_columns(
    headers: &csv::StringRecord,
    module: &str,
    chosen: Option<&str>,
    name: &str,
) -> Result<IdColumns, String> {
    let columns: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (i, h.trim_start_matches('\u{feff}').trim().to_string()))
        .collect();
    let list = || {
        columns
            .iter()
            .map(|(_, h)| format!("{h:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(chosen) = chosen {
        let found = columns
            .iter()
            .find(|(_, h)| h.eq_ignore_ascii_case(chosen.trim()))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{name}: no column {chosen:?} (--id-column); the header has {}",
                    list()
                )
            })?;
        return Ok(IdColumns {
            primary: found,
            others: Vec::new(),
        });
    }
    let mut found = columns
        .iter()
        .filter(|(_, h)| is_id_header(h, module))
        .cloned();
    let Some(primary) = found.next() else {
        return Err(format!(
            "{name}: no record ID column in the header (looked for \"Record Id\", \"id\", \"{} Id\"); it has {}. Name it with --id-column",
            module.strip_suffix('s').unwrap_or(module),
            list()
        ));
    };
    Ok(IdColumns {
        primary,
        others: found.collect(),
    })
}

/// One row's record ID from `record`, or what is wrong with it.
pub fn row_id(record: &csv::ByteRecord, columns: &IdColumns) -> Result<String, String> {
    let value = |(i, header): &(usize, String)| -> Result<String, String> {
        let raw = record.get(*i).unwrap_or_default();
        let text = std::str::from_utf8(raw)
            .map_err(|_| format!("column {header:?}: not valid UTF-8"))?
            .trim();
        let id = text.strip_prefix(ZCRM_PREFIX).unwrap_or(text);
        if super::is_record_id(id) {
            Ok(id.to_string())
        } else {
            Err(format!("column {header:?}: {text:?}"))
        }
    };
    let id = value(&columns.primary)?;
    for other in &columns.others {
        let theirs = value(other).unwrap_or_default();
        if theirs != id {
            return Err(format!(
                "columns {:?} and {:?} both look like the record ID but disagree ({id:?} and {theirs:?}): choose one with --id-column",
                columns.primary.1, other.1
            ));
        }
    }
    Ok(id)
}

/// A CSV reader over `input` as Zoho writes exports (a header row, commas,
/// double quotes; rows may have a different number of fields).
pub fn reader<R: Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(names.to_vec())
    }

    #[test]
    fn the_id_column_is_found_by_its_name() {
        for (names, want) in [
            (&["Last Name", "Record Id", "Email"][..], "Record Id"),
            (&["id", "Email"], "id"),
            (&["ID"], "ID"),
            (&["Lead Id", "Account Name.id"], "Lead Id"),
            (&["Account Name.id", "Leads_Id"], "Leads_Id"),
            (&["\u{feff}Record Id"], "Record Id"),
        ] {
            let c = id_columns(&headers(names), "Leads", None, "f.csv").unwrap();
            assert_eq!(c.primary.1, want, "{names:?}");
        }
        let err = id_columns(
            &headers(&["Name", "Account Name.id"]),
            "Leads",
            None,
            "f.csv",
        )
        .unwrap_err();
        assert!(err.contains("\"Name\", \"Account Name.id\""), "{err}");
        let chosen =
            id_columns(&headers(&["a", "Zoho ID"]), "Leads", Some("zoho id"), "f").unwrap();
        assert_eq!(chosen.primary, (1, "Zoho ID".to_string()));
    }
}
