//! The parameters table as Parquet (`analyze --parquet`, `merge --parquet`): the CSV table's
//! columns, typed. Values in a unit (`NAME (deg)`, `(mm)`, `(px)`, `(ratio)`) and the other
//! numbers are optional doubles, everything else optional UTF-8 strings; an empty CSV cell is a
//! null. One column never mixes units, as in the CSV.

use std::path::Path;
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::output;

/// Columns of numbers that carry no unit in their name.
const PLAIN_NUMBERS: [&str; 3] = ["p_csm", "csm_threshold", "median_confidence"];

/// Whether a column of the CSV table holds numbers.
pub fn is_numeric(column: &str) -> bool {
    PLAIN_NUMBERS.contains(&column)
        || ["(deg)", "(mm)", "(px)", "(ratio)"]
            .iter()
            .any(|unit| column.ends_with(unit))
}

fn schema(header: &[String]) -> Result<Type, String> {
    let fields = header
        .iter()
        .map(|name| {
            let builder = if is_numeric(name) {
                Type::primitive_type_builder(name, PhysicalType::DOUBLE)
            } else {
                Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String))
            };
            builder
                .with_repetition(Repetition::OPTIONAL)
                .build()
                .map(Arc::new)
                .map_err(|error| format!("column {name}: {error}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Type::group_type_builder("sagitta")
        .with_fields(fields)
        .build()
        .map_err(|error| error.to_string())
}

/// The table as Parquet bytes: one row group, uncompressed.
pub fn table_bytes(header: &[String], rows: &[Vec<String>]) -> Result<Vec<u8>, String> {
    let fail = |error: parquet::errors::ParquetError| error.to_string();
    let mut bytes = Vec::new();
    let properties = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(&mut bytes, Arc::new(schema(header)?), properties)
        .map_err(fail)?;
    let mut group = writer.next_row_group().map_err(fail)?;
    let mut index = 0;
    while let Some(mut column) = group.next_column().map_err(fail)? {
        let name = &header[index];
        let cells = rows
            .iter()
            .map(|row| row.get(index).map_or("", String::as_str));
        let levels: Vec<i16> = cells
            .clone()
            .map(|cell| i16::from(!cell.is_empty()))
            .collect();
        if is_numeric(name) {
            let values = cells
                .filter(|cell| !cell.is_empty())
                .map(|cell| {
                    cell.parse::<f64>()
                        .map_err(|_| format!("column {name}: '{cell}' is not a number"))
                })
                .collect::<Result<Vec<f64>, _>>()?;
            column
                .typed::<DoubleType>()
                .write_batch(&values, Some(&levels), None)
                .map_err(fail)?;
        } else {
            let values: Vec<ByteArray> = cells
                .filter(|cell| !cell.is_empty())
                .map(ByteArray::from)
                .collect();
            column
                .typed::<ByteArrayType>()
                .write_batch(&values, Some(&levels), None)
                .map_err(fail)?;
        }
        column.close().map_err(fail)?;
        index += 1;
    }
    group.close().map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(bytes)
}

/// Writes the table to `path` through a temporary file.
pub fn write_table(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<(), String> {
    let bytes = table_bytes(header, rows)?;
    output::write_atomic(path, &bytes).map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    #[test]
    fn tables_read_back_typed_with_nulls_for_empty_cells() {
        let header: Vec<String> = ["image", "status", "C2-C7 (deg)", "cSVA (mm)", "cSVA (px)"]
            .map(String::from)
            .to_vec();
        let rows = vec![
            ["a.png", "ok", "12.5", "", "40.25"]
                .map(String::from)
                .to_vec(),
            ["b.dcm", "flagged", "-3", "7.5", ""]
                .map(String::from)
                .to_vec(),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_table(&path, &header, &rows).unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let read: Vec<Vec<(String, Field)>> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().into_columns())
            .collect();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0][0], ("image".into(), Field::Str("a.png".into())));
        assert_eq!(read[0][2], ("C2-C7 (deg)".into(), Field::Double(12.5)));
        assert_eq!(read[0][3], ("cSVA (mm)".into(), Field::Null));
        assert_eq!(read[1][3], ("cSVA (mm)".into(), Field::Double(7.5)));
        assert_eq!(read[1][4], ("cSVA (px)".into(), Field::Null));
        let bad = vec![["c", "ok", "x", "", ""].map(String::from).to_vec()];
        assert!(table_bytes(&header, &bad)
            .unwrap_err()
            .contains("not a number"));
    }
}
