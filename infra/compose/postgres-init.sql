-- The compose PostgreSQL holds two databases: the paper-trader's books and Lifeboat's catalog.
CREATE DATABASE trading;
CREATE DATABASE lifeboat_catalog;
