ALTER TABLE {{.DB}}.call_panes {{addColumn}} late_partition Int32 DEFAULT -1;
ALTER TABLE {{.DB}}.call_panes {{addColumn}} late_offset Int64 DEFAULT -1;
ALTER TABLE {{.DB}}.call_rollups {{addColumn}} late_partition Int32 DEFAULT -1;
ALTER TABLE {{.DB}}.call_rollups {{addColumn}} late_offset Int64 DEFAULT -1
