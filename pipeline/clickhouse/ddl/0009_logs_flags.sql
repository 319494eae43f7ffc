ALTER TABLE {{.DB}}.logs ADD COLUMN flags Array(String)
