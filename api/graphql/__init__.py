"""The seeds' GraphQL API: types, resolvers, the schema and its HTTP endpoint."""
